/** The `engram` command as a person runs it: real processes, real Postgres. */
import { execFile, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, engram as runEngram, type ServerProcess, startServer } from "../../kit/cli";
import { createDatabase, dropDatabase, pgUrl, sharedNeonServer } from "../../kit/db";
import { neonConnectionString } from "../../kit/neon-server";

const run = promisify(execFile);

// Production runs the Neon HTTP driver; a CLI pointed at Neon must work as it does on pg.
describe.each(["pg", "neon-http"] as const)("the CLI on %s", (driver) => {
  let database: string;
  let env: NodeJS.ProcessEnv;

  const engram = (args: string[], extra: NodeJS.ProcessEnv = {}) => runEngram(args, { ...env, ...extra });

  beforeAll(async () => {
    database = await createDatabase();
    // On neon-http the CLI's own process talks to this process's Neon-protocol server.
    const neon = driver === "neon-http" ? await sharedNeonServer() : undefined;
    env = {
      ...process.env,
      DATABASE_URL: neon ? neonConnectionString(database, neon.port) : pgUrl(database),
      ...(neon ? { DATABASE_DRIVER: "neon-http", NEON_FETCH_ENDPOINT: neon.url } : {}),
      LOG_LEVEL: "silent",
      EMBEDDING_PROVIDER: "offline",
      CHAT_PROVIDER: "extractive",
    };
    delete env.OPENAI_API_KEY;
  });
  afterAll(() => dropDatabase(database));

  describe("engram keys", () => {
    it("create prints the new key alone on stdout", async () => {
      const res = await engram(["keys", "create", "--tenant", "acme"]);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/^egm_[0-9A-Za-z]{32}\n$/);
    });

    it("create says on stderr when it made the tenant, naming one that differs only in case", async () => {
      const first = await engram(["keys", "create", "--tenant", "Initech"]);
      expect(first.code).toBe(0);
      expect(first.stderr).toBe("engram: new tenant Initech\n");
      const again = await engram(["keys", "create", "--tenant", "Initech"]);
      expect(again.stderr).toBe("");
      const cased = await engram(["keys", "create", "--tenant", "initech"]);
      expect(cased.stdout).toMatch(/^egm_[0-9A-Za-z]{32}\n$/);
      expect(cased.stderr).toBe("engram: new tenant initech (names are case-sensitive: Initech is another tenant)\n");
      // Two others: one sentence, "Initech and initech are other tenants" (was "Initech, initech is another tenant").
      const third = await engram(["keys", "create", "--tenant", "INITECH"]);
      expect(third.stderr).toBe(
        "engram: new tenant INITECH (names are case-sensitive: Initech and initech are other tenants)\n",
      );
      // tenants create says so too: it had made another tenant without a word.
      const made = await engram(["tenants", "create", "iniTech"]);
      expect([made.code, made.stdout]).toEqual([0, expect.stringMatching(/^tenant iniTech \(/)]);
      expect(made.stderr).toBe(
        "engram: new tenant iniTech (names are case-sensitive: INITECH, Initech and initech are other tenants)\n",
      );
      const existing = await engram(["tenants", "create", "iniTech"]);
      expect([existing.code, existing.stderr]).toEqual([0, ""]);
      const long = await engram(["keys", "create", "--tenant", "Initech", "--name", "n".repeat(201)]);
      expect(long.code).toBe(1);
      expect(long.stderr).toBe(
        "engram: A key's name is at most 200 characters, without control characters (line breaks, tabs).\n",
      );
      const invalid = await engram(["keys", "create", "--tenant", "x y"]);
      expect(invalid.code).toBe(1);
      expect(invalid.stderr).toBe("engram: Tenant names are 1-64 characters of letters, digits, '.', '_' and '-'.\n");
    }, 120_000);

    it("create --json prints the key with its prefix and tenant", async () => {
      const res = await engram(["keys", "create", "--tenant", "acme", "--json"]);
      const json = JSON.parse(res.stdout);
      expect(json).toMatchObject({
        key: expect.stringMatching(/^egm_/),
        prefix: json.key.slice(0, 12),
        tenant: "acme",
      });
    });

    it("list shows prefixes, never keys, and revoke marks one revoked", async () => {
      const created = JSON.parse((await engram(["keys", "create", "--tenant", "globex", "--json"])).stdout);
      const revoked = await engram(["keys", "revoke", created.prefix]);
      expect(revoked.stdout).toContain(`revoked ${created.prefix}`);
      const again = await engram(["keys", "revoke", created.prefix]);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(
        new RegExp(`^${created.prefix} \\(tenant globex\\) was already revoked, at 20\\d\\d-`),
      );
      const list = await engram(["keys", "list", "--tenant", "globex"]);
      expect(list.stdout).toContain(created.prefix);
      expect(list.stdout).toContain("revoked");
      expect(list.stdout).not.toContain(created.key);
    }, 120_000);

    it("revoking an unknown prefix fails with one line and a non-zero exit", async () => {
      const res = await engram(["keys", "revoke", "egm_nonexist"]);
      expect(res.code).not.toBe(0);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
      expect(res.stderr).toContain("No API key with prefix egm_nonexist");
    });

    it("revokes a whole key pasted in by its prefix, and never echoes a key", async () => {
      const created = JSON.parse((await engram(["keys", "create", "--tenant", "globex", "--json"])).stdout);
      const revoked = await engram(["keys", "revoke", created.key]);
      expect(revoked.stdout).toBe(`revoked ${created.prefix} (tenant globex)\n`);
      const typo = await engram(["keys", "revoke", `${created.key}x`]);
      expect(typo.code).toBe(1);
      expect(typo.stderr).toBe(
        "engram: No API key is the value given (not shown: it may be a key with a typo): a key is egm_ and 32 letters or digits, its prefix (engram keys list) its first 12 characters.\n",
      );
      const spaced = await engram(["keys", "revoke", "egm_abc def ghi jkl"]);
      expect(spaced.stderr).toBe(typo.stderr);
      // A well-formed key that only shares a real key's prefix revokes nothing.
      const other = JSON.parse((await engram(["keys", "create", "--tenant", "globex", "--json"])).stdout);
      const lookalike = `${other.prefix}${"z".repeat(other.key.length - other.prefix.length)}`;
      const wrong = await engram(["keys", "revoke", lookalike]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toBe(`engram: No API key is the key given (prefix ${other.prefix}).\n`);
      const keys = JSON.parse((await engram(["keys", "list", "--tenant", "globex", "--json"])).stdout);
      expect(keys.find((k: { prefix: string }) => k.prefix === other.prefix)).toMatchObject({ revokedAt: null });
    }, 120_000);

    it("stops quietly when its reader goes away (| head), with no stack trace", async () => {
      await engram(["keys", "create", "--tenant", "piped"]);
      // `true` reads nothing and has exited by the time the CLI writes: every write meets a closed pipe.
      const res = await run("bash", ["-c", `set -o pipefail; node ${BIN} keys list --tenant piped | true`], { env });
      expect(res.stderr).toBe("");
    }, 120_000);
  });

  describe("a key or a user on the database itself (no server)", () => {
    it("works in the key's tenant, and refuses a key that is not valid or names another tenant", async () => {
      const key = (await engram(["keys", "create", "--tenant", "keyed"])).stdout.trim();
      const dir = mkdtempSync(join(tmpdir(), "engram-keyed-"));
      writeFileSync(join(dir, "kiwi.md"), "# Kiwi\n\nThe kiwi orchard is watered at dawn.");
      const ingested = await engram(["ingest", join(dir, "kiwi.md"), "--key", key]);
      expect(ingested.code).toBe(0);
      const inKeyed = await engram(["search", "kiwi orchard", "--tenant", "keyed", "--json"]);
      expect(JSON.parse(inKeyed.stdout).results.map((r: { documentId: string }) => r.documentId)).toEqual(["kiwi.md"]);
      const inLocal = await engram(["search", "kiwi orchard", "--json"]);
      expect(JSON.parse(inLocal.stdout).results).toEqual([]);

      const garbage = await engram(["stats", "--key", `egm_${"A".repeat(32)}`]);
      expect([garbage.code, garbage.stderr.trim().split("\n").length]).toEqual([1, 1]);
      expect(garbage.stderr).toContain("not valid");
      const other = await engram(["stats", "--key", key, "--tenant", "acme"]);
      expect([other.code, other.stderr]).toEqual([1, expect.stringContaining("tenant keyed, not acme")]);
      // `local` named is refused too; left out, the key's tenant is the one worked in.
      const local = await engram(["stats", "--key", key, "--tenant", "local"]);
      expect([local.code, local.stderr]).toEqual([1, expect.stringContaining("tenant keyed, not local")]);
    }, 120_000);

    it("refuses an end user the API would refuse, storing nothing", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-user-"));
      writeFileSync(join(dir, "note.md"), "A note for a user whose id has a slash.");
      const res = await engram(["ingest", join(dir, "note.md"), "--user", "bad/user"]);
      expect([res.code, res.stderr]).toEqual([1, expect.stringContaining("X-User-Id must be")]);
      const found = await engram(["search", "slash", "--user", "bad_user", "--scope", "user", "--json"]);
      expect(JSON.parse(found.stdout).results).toEqual([]);
      // An empty user (`--user "$ID"` with $ID unset) is not the shared space, where every user would read it.
      const empty = await engram(["ingest", join(dir, "note.md"), "--user", ""]);
      expect([empty.code, empty.stderr]).toEqual([1, "engram: --user is empty: leave it out for the shared space\n"]);
      const shared = await engram(["search", "slash", "--scope", "shared", "--json"]);
      expect(JSON.parse(shared.stdout).results).toEqual([]);
    }, 120_000);
  });

  describe("engram errors and help", () => {
    it("prints only its answer on stdout: the log goes to stderr", async () => {
      const res = await engram(["cleanup"], { LOG_LEVEL: "info" });
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/^removed \d+ rate-limit rows.*\n$/);
      expect(JSON.parse(res.stderr.trim().split("\n")[0] ?? "")).toMatchObject({ level: "info", message: "cleanup" });
      // Without LOG_LEVEL a command says what happened in its own words only: no JSON log lines around them.
      const quiet = await engram(["cleanup"], { LOG_LEVEL: undefined });
      expect([quiet.code, quiet.stderr]).toEqual([0, ""]);
    });

    it("names the setting and its range when an environment number is not one", async () => {
      const res = await engram(["stats"], { PORT: "abc" });
      expect(res.code).toBe(1);
      expect(res.stderr.trim()).toBe("engram: PORT: expected a whole number from 0 to 65535");
    });

    it("refuses to read a tenant that does not exist, and creates none", async () => {
      for (const command of [["search", "refunds"], ["chat", "refunds?"], ["stats"]]) {
        const res = await engram([...command, "--tenant", "nosuch-read"]);
        expect(res.code, command.join(" ")).toBe(1);
        expect(res.stderr.trim()).toBe("engram: No tenant named nosuch-read.");
      }
      const keys = await engram(["keys", "list", "--tenant", "nosuch-read"]);
      expect(keys.stderr.trim()).toBe("engram: No tenant named nosuch-read.");
    });

    it.each([
      ["--help"],
      ["keys", "--help"],
      ["ingest", "--help"],
      ["search", "--help"],
      ["tenants", "set-limits", "--help"],
    ])("%s prints usage and exits 0", async (...args) => {
      const res = await engram(args);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain("Usage:");
    });

    it.each([
      [["start", "--port", "abc"], "argument 'abc' is invalid"],
      [["search"], "missing required argument 'query'"],
      [
        ["search", "otters", "-k", "abc"],
        "option '-k, --top-k <n>' argument 'abc' is invalid. expected a whole number from 1 to 50",
      ],
      [["search", "otters", "-k", "51"], "argument '51' is invalid. expected a whole number from 1 to 50"],
      [["reembed", "--batch-size", "abc"], "argument 'abc' is invalid. expected a whole number from 1 to 10000"],
    ])("%j: a usage error is one line and a non-zero exit", async (args, message) => {
      const res = await engram(args);
      expect(res.code).not.toBe(0);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
      expect(res.stderr).toContain(message);
    });

    it("names the host in one line when DATABASE_URL points nowhere", async () => {
      const res = await engram(["keys", "list"], {
        DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere",
        DATABASE_DRIVER: "pg",
      });
      expect(res.code).not.toBe(0);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
      expect(res.stderr).toContain("127.0.0.1:1");
    });

    it("says the database does not exist, not that its server cannot be reached", async () => {
      const res = await engram(["keys", "list"], {
        DATABASE_URL: pgUrl("engram_no_such_database"),
        DATABASE_DRIVER: "pg",
      });
      expect(res.code).toBe(1);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
      expect(res.stderr).toMatch(/refused the connection: database "engram_no_such_database" does not exist \(3D000\)/);
    });

    it("rejects a malformed rate limit with the reason", async () => {
      await engram(["tenants", "create", "acme"]);
      const res = await engram(["tenants", "set-limits", "acme", "--chat", "lots"]);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/chat/i);
    });

    it("says when a tenant ceiling is below one end user's rate: one user alone can spend it", async () => {
      await engram(["tenants", "create", "ceilings"]);
      const low = await engram(["tenants", "set-limits", "ceilings", "--search", "10/min", "--tenant-search", "4/min"]);
      expect(low.code).toBe(0);
      expect(low.stdout).toContain("search 10/min, tenant.search 4/min");
      expect(low.stderr).toContain(
        "note: tenant.search 4/min is below one end user's search rate (10 per 60 s): one user alone can spend the tenant's ceiling",
      );
      const fine = await engram(["tenants", "set-limits", "ceilings", "--tenant-search", "40/min"]);
      expect(fine.stderr).not.toContain("below");
    });

    it("lists the tenants with their active keys and the limits they override", async () => {
      await engram(["tenants", "create", "listed"]);
      // Stored as read: a count with leading zeros is the number it means.
      await engram(["tenants", "set-limits", "listed", "--chat", "007/min"]);
      const kept = (await engram(["keys", "create", "--tenant", "listed"])).stdout.trim();
      await engram(["keys", "create", "--tenant", "listed"]);
      await engram(["keys", "revoke", kept]);
      const res = await engram(["tenants", "list"]);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/^listed {2}1 active key {3}limits: chat 7\/min$/m);
      const json = JSON.parse((await engram(["tenants", "list", "--json"])).stdout) as { name: string }[];
      expect(json.find((t) => t.name === "listed")).toMatchObject({ activeKeys: 1, rateLimits: { chat: "7/min" } });
    }, 120_000);
  });

  describe("engram ingest", () => {
    it("ingests a folder, skips what it cannot read with a reason, and prints a summary", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-"));
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "a.md"), "# Refunds\n\nRefunds are issued within 14 days.");
      writeFileSync(join(dir, "sub", "b.txt"), "Store credit never expires.");
      writeFileSync(
        join(dir, "c.html"),
        "<html><head><title>Hours</title></head><body><p>Open 9 to 5.</p><script>x()</script></body></html>",
      );
      writeFileSync(
        join(dir, "d.jsonl"),
        '{"id":"j1","content":"First line doc"}\nnot json\n{"id":"j2","content":"Second line doc"}\n',
      );
      writeFileSync(join(dir, "e.md"), Buffer.from([0x00, 0x01, 0x02, 0xff]));
      writeFileSync(join(dir, "f.png"), "not supported");
      // The id of a record already read: refused, not written over the first.
      writeFileSync(join(dir, "g.json"), '{"id":"j1","content":"Another text under the same id"}');

      const res = await engram(["ingest", dir, "--tenant", "acme"]);
      // A damaged record and a second record under one id are lost documents: listed as failed, exit 1.
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/6 files, 5 documents \(5 created, 0 updated, 0 unchanged\)/);
      expect(res.stdout).toContain("binary file");
      expect(res.stdout).toContain(`failed ${join(dir, "d.jsonl")}:2: invalid JSON line`);
      expect(res.stdout).toContain(
        `failed ${join(dir, "g.json")}: a second document with the id j1 (the first: ${join(dir, "d.jsonl")})`,
      );
      const first = await engram(["search", "First line doc", "--tenant", "acme", "--json", "-k", "1"]);
      expect(JSON.parse(first.stdout).results[0]).toMatchObject({ documentId: "j1", content: "First line doc" });

      const again = await engram(["ingest", dir, "--tenant", "acme", "--json"]);
      expect(again.stderr).not.toContain("new tenant");
      const summary = JSON.parse(again.stdout);
      expect(summary).toMatchObject({ documents: 5, unchanged: 5, embedded: 0 });

      const search = await engram(["search", "how", "long", "are", "refunds", "--tenant", "acme"]);
      expect(search.stdout).toMatch(/^1\. Refunds/);

      const chat = await engram(["chat", "When are refunds issued?", "--tenant", "acme"]);
      expect(chat.code).toBe(0);
      expect(chat.stdout).toContain("Refunds are issued within 14 days [1]");
      expect(chat.stdout).toMatch(/\[1\] Refunds/);
      // The API's message names its field; the CLI's names its flag.
      const unknown = await engram(["chat", "And after that?", "--tenant", "acme", "--conversation", "nope"]);
      expect([unknown.code, unknown.stderr]).toEqual([
        1,
        'engram: No conversation with id "nope" to continue: leave --conversation out to start one (its id is printed below the answer)\n',
      ]);
    }, 120_000);

    it("names a file outside the current folder from the folder given, the same from anywhere, never `../`", async () => {
      const base = mkdtempSync(join(tmpdir(), "engram-cli-ids-"));
      for (const team of ["red", "blue"]) {
        mkdirSync(join(base, team, "notes"), { recursive: true });
        writeFileSync(join(base, team, "notes", "gym.md"), `The ${team} team's gym opens at 7.`);
      }
      const folder = join(base, "red", "notes");
      const skippedOf = async (res: { stdout: string }) =>
        (JSON.parse(res.stdout) as { skipped: { path: string; reason: string }[] }).skipped;

      const first = await engram(["ingest", folder, "--tenant", "ids", "--json"]);
      expect(JSON.parse(first.stdout)).toMatchObject({ created: 1 });
      // The file given alone is named from its own folder, so it is another document: ids follow the path given.
      const file = await engram(["ingest", join(folder, "gym.md"), "--tenant", "ids", "--json"]);
      expect(JSON.parse(file.stdout)).toMatchObject({ created: 1 });
      const listed = await engram(["search", "gym opens", "--tenant", "ids", "--json", "-k", "5"]);
      const documentIds = (JSON.parse(listed.stdout) as { results: { documentId: string }[] }).results.map(
        (r) => r.documentId,
      );
      expect(documentIds.sort()).toEqual(["gym.md", "notes/gym.md"]);
      expect(documentIds.some((id) => id.includes(".."))).toBe(false);
      const again = await engram(["ingest", folder, "--tenant", "ids", "--json"]);
      expect(JSON.parse(again.stdout)).toMatchObject({ unchanged: 1, created: 0 });
      // A file given alone and inside its folder in the same run is read once, named as it was first reached.
      const twice = await engram(["ingest", join(folder, "gym.md"), folder, "--tenant", "ids-once", "--json"]);
      expect(JSON.parse(twice.stdout)).toMatchObject({ created: 1, skipped: [] });

      // Two folders that would give the same ids in one run: the second is refused, not written over the first.
      const both = await engram(["ingest", folder, join(base, "blue", "notes"), "--tenant", "ids", "--json"]);
      // Counted among the run's files, as a damaged file is: "1 file ... 1 failed" had not counted it.
      expect(JSON.parse(both.stdout)).toMatchObject({ files: 2, documents: 1, failed: 1 });
      expect(await skippedOf(both)).toEqual([
        {
          path: join(base, "blue", "notes", "gym.md"),
          reason: `its id notes/gym.md is also ${join(folder, "gym.md")}'s: run this from a folder that holds both (ids are paths from the current folder), so that each keeps a document of its own`,
          failed: true,
        },
      ]);
    }, 120_000);

    it("reads PDFs, Word files, web pages and CSV, and lists every skipped or failed file with its reason", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-formats-"));
      const fixtures = join(import.meta.dirname, "../fixtures/extract");
      for (const name of ["handbook.pdf", "handbook.docx", "page.html", "scanned.pdf", "encrypted.pdf", "bomb.docx"])
        copyFileSync(join(fixtures, name), join(dir, name));
      // A PDF under a lying name is read as the PDF it is.
      copyFileSync(join(fixtures, "shared-mime-info-spec.pdf"), join(dir, "spec.txt"));
      writeFileSync(join(dir, "prices.csv"), "plan,price\nbasic,5\npro,12\n");
      writeFileSync(join(dir, "logo.png"), "not an image either");

      const res = await engram(["ingest", dir, "--tenant", "formats"]);
      // Two files failed: listed, the rest stored, and the exit status says so.
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(
        /^8 files, 5 documents \(5 created, 0 updated, 0 unchanged\), \d+ chunks .*, 2 skipped, 2 failed/,
      );
      expect(res.stdout).toContain(`skipped ${join(dir, "logo.png")}: unsupported file type .png`);
      expect(res.stdout).toContain(`skipped ${join(dir, "scanned.pdf")}: No extractable text (scanned?)`);
      expect(res.stdout).toMatch(/failed .*encrypted\.pdf: The PDF is encrypted .*\(extract\.encrypted\)/);
      expect(res.stdout).toMatch(/failed .*bomb\.docx: .*\(extract\.too_large\)/);
      // The last progress line says so too, not that every file was ingested.
      expect(res.stderr.trim().split("\n").at(-1)).toBe("read 8/8 files (5 documents stored, 2 failed)");

      const json = JSON.parse((await engram(["ingest", dir, "--tenant", "formats", "--json"])).stdout);
      expect(json).toMatchObject({ files: 8, documents: 5, unchanged: 5, embedded: 0, failed: 2 });
      expect(json.skipped).toHaveLength(4);

      const search = await engram(["search", "meals", "reimbursed", "euros", "--tenant", "formats", "--json"]);
      const hits = JSON.parse(search.stdout).results as { documentId: string; location?: unknown }[];
      expect(hits.map((h) => h.documentId)).toEqual(
        expect.arrayContaining([expect.stringMatching(/handbook\.(pdf|docx)$/)]),
      );
    });

    it("skips a named pipe instead of waiting on it, and reads a folder reached again through a link once", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-odd-"));
      writeFileSync(join(dir, "note.md"), "A note beside a pipe and a link to its own folder.");
      await run("mkfifo", [join(dir, "pipe.txt")]);
      symlinkSync(dir, join(dir, "loop"));
      // A link to nothing in the folder is skipped, not a failure: it was not asked for.
      symlinkSync(join(dir, "gone.md"), join(dir, "dangling.md"));
      const res = await engram(["ingest", dir, "--tenant", "odd", "--json"]);
      expect(res.code).toBe(0);
      const summary = JSON.parse(res.stdout);
      expect(summary).toMatchObject({ files: 1, documents: 1, created: 1, failed: 0 });
      expect(summary.skipped).toEqual(
        expect.arrayContaining([
          { path: join(dir, "pipe.txt"), reason: "not a regular file (a pipe, socket or device)", failed: false },
          { path: join(dir, "dangling.md"), reason: "a link to nothing (broken link)", failed: false },
        ]),
      );
      expect(summary.skipped.some((s: { path: string }) => s.path.startsWith(join(dir, "loop", "loop")))).toBe(false);
    }, 120_000);

    it("reads a file named on the command line whatever its name, and fails one that holds nothing to ingest", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-named-"));
      writeFileSync(join(dir, "README"), "The boiler key hangs in the garage.\n");
      writeFileSync(join(dir, "blob.bin"), Buffer.from([0x89, 0x00, 0x01, 0x02, 0xfa, 0xfb, 0x00, 0x9c]));
      const read = await engram(["ingest", join(dir, "README"), "--tenant", "named", "--json"]);
      expect([read.code, JSON.parse(read.stdout).created]).toEqual([0, 1]);
      const failed = await engram(["ingest", join(dir, "blob.bin"), "--tenant", "named", "--json"]);
      expect(failed.code).toBe(1);
      expect(JSON.parse(failed.stdout).skipped).toEqual([
        expect.objectContaining({ path: join(dir, "blob.bin"), failed: true }),
      ]);
      // Found in a folder, the same files are skipped by their names, as before: no failure.
      const folder = await engram(["ingest", dir, "--tenant", "named-folder", "--json"]);
      expect([folder.code, JSON.parse(folder.stdout).failed]).toEqual([0, 0]);
    });

    it("ingests what exists and exits non-zero when a path given does not", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-missing-"));
      writeFileSync(join(dir, "here.txt"), "A note that exists.");
      const missing = join(dir, "typo.md");
      const res = await engram(["ingest", join(dir, "here.txt"), missing, "--tenant", "missing"]);
      expect(res.code).toBe(1);
      expect(res.stdout).toMatch(/^1 file, 1 document \(1 created, .*0 skipped, 1 failed/);
      expect(res.stdout).toContain(`failed ${missing}: not found`);
    });

    it("--prune deletes what the folder's files no longer hold, and nothing after a run with a failed file", async () => {
      const base = mkdtempSync(join(tmpdir(), "engram-cli-prune-"));
      const notes = join(base, "notes");
      mkdirSync(join(notes, "sub"), { recursive: true });
      writeFileSync(join(notes, "kiwi.md"), "# Kiwi\n\nKiwis ripen on the counter in a week.");
      writeFileSync(join(notes, "sub", "mango.txt"), "Mangoes ripen faster in a paper bag.");
      writeFileSync(join(notes, "list.jsonl"), '{"content":"Plums keep a week."}\n{"content":"Figs keep two days."}\n');
      // Beside them: a folder whose name starts the same, and a program's document with a URL for its source.
      mkdirSync(join(base, "notes-old"));
      writeFileSync(join(base, "notes-old", "pear.md"), "Pears ripen from the inside out.");
      writeFileSync(
        join(base, "web.jsonl"),
        '{"id":"web-apple","content":"Apples keep for months.","source":"https://example.com/notes/apple.md"}\n',
      );
      const t = ["--tenant", "prune"];
      for (const path of [notes, join(base, "notes-old"), join(base, "web.jsonl")])
        expect((await engram(["ingest", path, ...t])).code).toBe(0);

      // The mango note deleted, the kiwi note renamed, the second record dropped.
      rmSync(join(notes, "sub", "mango.txt"));
      renameSync(join(notes, "kiwi.md"), join(notes, "kiwi-notes.md"));
      writeFileSync(join(notes, "list.jsonl"), '{"content":"Plums keep a week."}\n');
      // A path that fails in the same run: nothing is pruned, and the summary says so.
      const failing = await engram(["ingest", notes, join(base, "typo"), "--prune", ...t]);
      expect(failing.code).toBe(1);
      expect(failing.stdout).toContain("1 failed, none pruned (a file failed)");

      const res = await engram(["ingest", notes, "--prune", "--json", ...t]);
      expect(res.code).toBe(0);
      const summary = JSON.parse(res.stdout);
      expect(summary).toMatchObject({ files: 2, failed: 0 });
      expect(summary.pruned.sort()).toEqual(["notes/kiwi.md", "notes/list.jsonl#1", "notes/sub/mango.txt"]);
      const stats = JSON.parse((await engram(["stats", "--json", ...t])).stdout);
      // kiwi-notes.md, list.jsonl#0, pear.md and web-apple live; the three pruned await the cleanup.
      expect(stats.documents).toEqual({ total: 4, deleted: 3 });
      const found = JSON.parse(
        (await engram(["search", "ripen", "--mode", "keyword", "--json", "-k", "10", ...t])).stdout,
      );
      expect(found.results.map((r: { documentId: string }) => r.documentId).sort()).toEqual([
        "notes-old/pear.md",
        "notes/kiwi-notes.md",
      ]);
      // Again: nothing more to prune.
      const again = await engram(["ingest", notes, "--prune", ...t]);
      expect(again.stdout).toContain("0 failed, 0 pruned");
      // The current folder's files have bare ids, as uploads do: refused before anything is read or stored.
      const here = await engram(["ingest", ".", "--prune", "--json", ...t]);
      expect(here).toMatchObject({ code: 1, stdout: "" });
      expect(here.stderr).toMatch(
        /^engram: --prune covers the folders named, .*cd \.\. && engram ingest <folder> --prune\)\n$/,
      );
    }, 120_000);

    it("stops on Ctrl-C after the batches being stored, says how far it got, and a second run stores the rest", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-interrupt-"));
      for (let i = 0; i < 3000; i++) writeFileSync(join(dir, `n${i}.txt`), `Note ${i} about gadget ${i % 17}.`);
      const child = spawn("node", [BIN, "ingest", dir, "--tenant", "interrupted"], { env });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
        if (/^read \d/m.test(stderr) && !child.killed) child.kill("SIGINT");
      });
      const code = await new Promise((resolve) => child.on("exit", resolve));

      expect(code).toBe(130);
      expect(stderr).toContain("engram: interrupted: finishing the batches being stored");
      const stored = Number(/interrupted: (\d+) of 3,?000 files stored/.exec(stdout)?.[1]);
      expect(stored).toBeGreaterThan(0);
      expect(stored).toBeLessThan(3000);
      // The summary counts the files dealt with, not the 3,000 the run never read.
      expect(stdout).toMatch(new RegExp(`^${stored} files?, ${stored} documents? \\(`, "m"));
      const stats = JSON.parse((await engram(["stats", "--tenant", "interrupted", "--json"])).stdout);
      expect(stats.documents.total).toBe(stored);
      const rest = JSON.parse((await engram(["ingest", dir, "--tenant", "interrupted", "--json"])).stdout);
      expect(rest).toMatchObject({ created: 3000 - stored, unchanged: stored });
    }, 120_000);

    it("stores a folder of many batches, several at once, and counts every file once", async () => {
      const dir = mkdtempSync(join(tmpdir(), "engram-cli-many-"));
      for (let i = 0; i < 730; i++) writeFileSync(join(dir, `n${i}.txt`), `Note ${i} about widget ${i % 13}.`);
      const res = await engram(["ingest", dir, "--tenant", "many"]);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/^730 files, 730 documents \(730 created, 0 updated, 0 unchanged\), 730 chunks/);
      const [made, ...progress] = res.stderr.trim().split("\n");
      // A tenant the ingest made is said first: a mistyped --tenant would otherwise go unnoticed.
      expect(made).toBe("engram: new tenant many");
      expect(progress).toHaveLength(8);
      expect(progress.at(-1)).toBe("read 730/730 files (730 documents stored)");
      const stats = JSON.parse((await engram(["stats", "--tenant", "many", "--json"])).stdout);
      expect(stats.documents.total).toBe(730);
    });
  });
});

describe("the CLI on embedded PGlite", () => {
  it("says on stderr when it starts a new database, and only then", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "data");
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: dir, LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "OPENAI_API_KEY", "EMBEDDING_PROVIDER"]) delete env[name];
    const stats = () => run("node", [BIN, "stats", "--json"], { env, timeout: 60_000 });

    const first = await stats();
    const second = await stats();

    // A command run from another folder than usual finds no data there; it says where it is looking.
    expect(first.stderr).toBe(
      `engram: new embedded database in ${dir} (ENGRAM_DATA_DIR or DATABASE_URL to use another)\n`,
    );
    expect(JSON.parse(first.stdout)).toMatchObject({ documents: { total: 0 }, chunks: 0 });
    expect(second.stderr).toBe("");
  }, 120_000);

  it("says which migrations it applied, and refuses the database's own commands when ENGRAM_URL names a server", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "data");
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: dir, LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "OPENAI_API_KEY", "EMBEDDING_PROVIDER", "ENGRAM_URL"])
      delete env[name];
    const migrate = () => run("node", [BIN, "migrate"], { env, timeout: 60_000 }).then((r) => r.stdout);
    expect(await migrate()).toMatch(/^applied \d+ migrations \(0001_\w+ to \d{4}_\w+\); the database is up to date/);
    expect(await migrate()).toBe("database is up to date (pglite)\n");

    const elsewhere = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "data");
    for (const args of [["keys", "list"], ["tenants", "list"], ["cleanup"], ["reembed", "--dry-run"], ["migrate"]]) {
      const refused = await run("node", [BIN, ...args], {
        env: { ...env, ENGRAM_DATA_DIR: elsewhere, ENGRAM_URL: "https://user:secret@engram.example.com/v1" },
        timeout: 60_000,
      }).catch((error: { code: number; stdout: string; stderr: string }) => error);
      expect(refused).toMatchObject({
        code: 1,
        stdout: "",
        stderr: `engram: the ${args[0]} command works on a database itself (DATABASE_URL, else the embedded folder), not through ENGRAM_URL (https://engram.example.com): set DATABASE_URL to the database meant, or unset ENGRAM_URL to use this machine's embedded store\n`,
      });
    }
    // Nothing was made on this machine.
    expect(existsSync(elsewhere)).toBe(false);
  }, 120_000);

  it("names --host when it is no host or no address of this machine, before making a database", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "data");
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: dir, LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "ENGRAM_URL"]) delete env[name];
    for (const [host, why] of [
      ["nosuch.invalid", "names no host"],
      ["192.0.2.1", "is no address of this machine"],
    ]) {
      const refused = await run("node", [BIN, "start", "--port", "0", "--host", host as string], {
        env,
        timeout: 60_000,
      }).catch((error: { code: number; stderr: string }) => error);
      expect(refused).toMatchObject({
        code: 1,
        stderr: `engram: --host ${host} ${why}: pass --host 127.0.0.1 (this machine), 0.0.0.0 (every interface) or one of its addresses\n`,
      });
    }
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  it("names ENGRAM_DATA_DIR when its path cannot be a folder", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "a-file");
    writeFileSync(file, "not a folder");
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: file, LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER"]) delete env[name];

    const failed = await run("node", [BIN, "stats"], { env, timeout: 60_000 }).catch((e) => e);

    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      new RegExp(`^engram: ENGRAM_DATA_DIR: ${file} cannot be the embedded database's folder \\(EEXIST`),
    );
  }, 60_000);

  // Node's recursive mkdir looped there forever at full CPU: /proc's mkdir says ENOENT with its parent there. The
  // project runs on Linux (Lambda, CI), which always has /proc.
  it("names ENGRAM_DATA_DIR in one line, at once, under /proc, and makes a path's missing folders", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER"]) delete env[name];
    for (const dir of ["/proc/nope", "/proc/nope/deeper"]) {
      const failed = await run("node", [BIN, "stats"], {
        env: { ...env, ENGRAM_DATA_DIR: dir },
        timeout: 20_000,
      }).catch((e) => e);
      expect([failed.code, failed.stdout]).toEqual([1, ""]);
      expect(failed.stderr).toMatch(
        new RegExp(`^engram: ENGRAM_DATA_DIR: ${dir} cannot be the embedded database's folder \\(ENOENT[^\n]*\n$`),
      );
    }
    const nested = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "a", "b", "data");
    const made = await run("node", [BIN, "stats", "--json"], {
      env: { ...env, ENGRAM_DATA_DIR: nested },
      timeout: 60_000,
    });
    expect(JSON.parse(made.stdout)).toMatchObject({ tenant: "local" });
    expect(statSync(nested).mode & 0o777).toBe(0o700);
  }, 60_000);
});

describe("the CLI beside a local server on the same folder", () => {
  it("lets the requests being answered finish when it is stopped", async () => {
    const database = await createDatabase();
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: pgUrl(database), LOG_LEVEL: "silent", PORT: "0" };
    for (const name of ["DATABASE_DRIVER", "OPENAI_API_KEY", "EMBEDDING_PROVIDER"]) delete env[name];
    const server = await startServer(env);
    const key = /local key: (egm_\S+)/.exec(server.output())?.[1];
    const documents = Array.from({ length: 100 }, (_, i) => ({
      id: `d${i}`,
      content: `Section ${i}. ${"The orchard is watered at dawn and the kiwis are picked in May. ".repeat(300)}`,
    }));
    const answer = fetch(`${server.url}/v1/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ documents }),
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const stopped = server.stop();

    const response = await answer;
    expect(response.status).toBe(200);
    expect((await response.json()).totals.documents).toBe(100);
    await stopped;
    expect(server.child.exitCode).toBe(0);
    const stats = await runEngram(["stats", "--json"], env);
    expect(JSON.parse(stats.stdout).documents.total).toBe(100);
    await dropDatabase(database);
  }, 120_000);

  it("gives up in one line, naming the process, when that server does not answer", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "engram-cli-")), "data");
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: dir, LOG_LEVEL: "silent", PORT: "0" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "OPENAI_API_KEY", "EMBEDDING_PROVIDER"]) delete env[name];
    const server = await startServer(env);
    // The lock names the process that serves; `bin/engram.js` may run it as a child of its own.
    const { pid } = JSON.parse(readFileSync(join(dir, "server.json"), "utf8")) as { pid: number };
    try {
      const answered = await runEngram(["search", "anything"], env);
      expect(answered.code).toBe(0);

      process.kill(pid, "SIGSTOP");
      const started = Date.now();
      const frozen = await runEngram(["search", "anything"], env, 60_000);
      const waited = Date.now() - started;
      process.kill(pid, "SIGCONT");

      expect(frozen.code).toBe(1);
      expect(frozen.stderr.trim().split("\n")).toHaveLength(1);
      expect(frozen.stderr).toContain(`pid ${pid}), which did not answer within 10 s`);
      expect(waited).toBeLessThan(40_000);
    } finally {
      try {
        process.kill(pid, "SIGCONT");
      } catch {}
      await server.stop();
    }
  }, 120_000);
});

describe("the CLI against a deployed Engram (ENGRAM_URL)", () => {
  let database: string;
  let server: ServerProcess | undefined;
  let url = "";
  let key = "";
  // The user's shell: no database of its own, an empty folder where a local store would be made.
  const local = join(mkdtempSync(join(tmpdir(), "engram-cli-remote-")), "data");
  const shell = (extra: NodeJS.ProcessEnv = {}) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: local, LOG_LEVEL: "silent" };
    for (const name of [
      "DATABASE_URL",
      "DATABASE_DRIVER",
      "OPENAI_API_KEY",
      "ENGRAM_URL",
      "ENGRAM_API_KEY",
      "ENGRAM_USER_ID",
    ]) {
      delete env[name];
    }
    return { ...env, ...extra };
  };
  const engram = runEngram;

  beforeAll(async () => {
    database = await createDatabase();
    const serverEnv: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: pgUrl(database),
      PORT: "0",
      LOG_LEVEL: "warn",
    };
    for (const name of ["DATABASE_DRIVER", "OPENAI_API_KEY", "EMBEDDING_PROVIDER"]) delete serverEnv[name];
    key = (await run("node", [BIN, "keys", "create", "--tenant", "deployed"], { env: serverEnv })).stdout.trim();
    server = await startServer(serverEnv);
    url = server.url;
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await dropDatabase(database);
  });

  it("ingests, searches and chats through that Engram's API as the key's tenant, with no local store", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-remote-files-"));
    writeFileSync(join(folder, "boiler.md"), "# Boiler\n\nThe boiler is serviced every March by Hartley Heating.\n");
    const env = shell({ ENGRAM_URL: url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "maya" });

    const ingested = await engram(["ingest", join(folder, "boiler.md"), "--json"], env);
    expect(ingested.code).toBe(0);
    expect(JSON.parse(ingested.stdout)).toMatchObject({ files: 1, documents: 1 });
    const search = await engram(["search", "who services the boiler", "--json"], env);
    expect(search.code).toBe(0);
    expect(JSON.parse(search.stdout).results[0]).toMatchObject({ documentId: "boiler.md" });
    const chat = await engram(["chat", "Who services the boiler?"], env);
    expect(chat.stdout).toContain("Hartley Heating");
    const unknown = await engram(["chat", "And then?", "--conversation", "nope"], env);
    expect(unknown.stderr).toContain("leave --conversation out to start one");

    // Stored in the deployed tenant, in Maya's space (ENGRAM_USER_ID): another user does not see it.
    const other = await engram(["search", "who services the boiler", "--json", "--user", "leo"], env);
    expect(JSON.parse(other.stdout).results).toEqual([]);
    // No embedded database was made on the user's machine.
    expect(`${ingested.stderr}${search.stderr}${chat.stderr}`).not.toContain("new embedded database");
    expect(existsSync(local)).toBe(false);
  }, 120_000);

  it("--prune lists and deletes through the API, in the end user's own space only", async () => {
    const folder = join(mkdtempSync(join(tmpdir(), "engram-cli-remote-prune-")), "recipes");
    mkdirSync(folder);
    writeFileSync(join(folder, "soup.md"), "Leek soup needs an hour.");
    writeFileSync(join(folder, "bread.md"), "Bread needs a night to rise.");
    const maya = shell({ ENGRAM_URL: url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "maya-prune" });
    const leo = shell({ ENGRAM_URL: url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "leo-prune" });
    expect((await engram(["ingest", folder], maya)).code).toBe(0);
    expect((await engram(["ingest", folder], leo)).code).toBe(0);

    rmSync(join(folder, "bread.md"));
    const res = await engram(["ingest", folder, "--prune", "--json"], maya);
    expect(JSON.parse(res.stdout)).toMatchObject({ pruned: ["recipes/bread.md"], failed: 0 });
    const ids = async (env: NodeJS.ProcessEnv) =>
      (
        JSON.parse((await engram(["search", "needs", "--json", "--scope", "user"], env)).stdout).results as {
          documentId: string;
        }[]
      )
        .map((r) => r.documentId)
        .sort();
    expect(await ids(maya)).toEqual(["recipes/soup.md"]);
    // Leo's copy of the same file is his, and stays.
    expect(await ids(leo)).toEqual(["recipes/bread.md", "recipes/soup.md"]);
  }, 120_000);

  it("does not sit out a rate limit's wait of more than a minute: the refusal, with when to retry, is its error", async () => {
    const serverEnv: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: pgUrl(database), LOG_LEVEL: "silent" };
    for (const name of ["DATABASE_DRIVER", "ENGRAM_URL"]) delete serverEnv[name];
    await run("node", [BIN, "tenants", "set-limits", "deployed", "--search", "1/h"], { env: serverEnv });
    const env = shell({ ENGRAM_URL: url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "hourly" });
    try {
      expect((await engram(["search", "boiler", "--json"], env)).code).toBe(0);
      const started = Date.now();
      const refused = await engram(["search", "boiler"], env);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /^engram: Too many search requests: the limit is 1 per 3600 s; retry in \d+ s\.\n$/,
      );
    } finally {
      await run("node", [BIN, "tenants", "set-limits", "deployed", "--search", "default"], { env: serverEnv });
    }
  }, 120_000);

  it("refuses in one line a URL without a key, a malformed key, a URL that is not http(s) and an empty user", async () => {
    for (const [extra, message] of [
      [{ ENGRAM_URL: url }, "ENGRAM_URL (--url) needs the API key of that Engram"],
      [{ ENGRAM_URL: url, ENGRAM_API_KEY: "nope" }, "engram: ENGRAM_API_KEY is refused"],
      [{ ENGRAM_URL: "ftp://example.org", ENGRAM_API_KEY: key }, "ENGRAM_URL (--url) is not an http(s) URL"],
      // Set but empty, as `engram mcp` refuses it: it would otherwise put a user's documents in the shared space.
      [
        { ENGRAM_URL: url, ENGRAM_API_KEY: key, ENGRAM_USER_ID: "" },
        "ENGRAM_USER_ID (--user) is empty: leave it out for the shared space",
      ],
    ] as const) {
      const res = await engram(["search", "boiler"], shell(extra));
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(message);
      expect(res.stderr.trim().split("\n")).toHaveLength(1);
    }
    // A URL copied with the API's /v1 is the Engram's own: its routes were /v1/v1/...
    for (const given of [`${url}/v1`, `${url}/v1/`]) {
      const v1 = await engram(["stats", "--json", "--url", given, "--key", key], shell());
      expect([v1.code, v1.stderr, JSON.parse(v1.stdout || "{}").tenant]).toEqual([0, "", "deployed"]);
    }
    // The refusal names where the key came from: ENGRAM_API_KEY counts only with a URL, so without one it is --key.
    for (const [args, extra] of [
      [["--key", "nope"], {}],
      [["--key", "nope"], { ENGRAM_URL: url, ENGRAM_API_KEY: key }],
      [["--url", url, "--key", "nope"], {}],
    ] as const) {
      const res = await engram(["search", "boiler", ...args], shell(extra));
      expect([res.code, res.stderr]).toEqual([1, expect.stringMatching(/^engram: --key is refused: [^\n]*\n$/)]);
    }
    // The key's tenant is the one served: a --tenant beside --url would be ignored, so it is refused.
    const tenant = await engram(
      ["search", "boiler", "--tenant", "other"],
      shell({ ENGRAM_URL: url, ENGRAM_API_KEY: key }),
    );
    expect([tenant.code, tenant.stderr]).toEqual([
      1,
      "engram: with --url (ENGRAM_URL) the API key names the tenant: drop --tenant\n",
    ]);
    // A deployed Engram that is down is said to be, not a database.
    const down = await engram(["stats"], shell({ ENGRAM_URL: "http://127.0.0.1:1", ENGRAM_API_KEY: key }));
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^engram: Cannot reach Engram at http:\/\/127\.0\.0\.1:1: /);
    // The key and user variables alone (a shell set up for a remote MCP server) leave local commands local.
    const localOnly = await engram(["stats"], shell({ ENGRAM_API_KEY: key, ENGRAM_USER_ID: "maya" }));
    expect(localOnly.code).toBe(0);
    // An empty ENGRAM_URL is none: the command stays local.
    const emptyUrl = await engram(["stats", "--json"], shell({ ENGRAM_URL: "" }));
    expect([emptyUrl.code, JSON.parse(emptyUrl.stdout).tenant]).toEqual([0, "local"]);
    expect(localOnly.stderr).toContain("new embedded database");
  }, 120_000);
});

// Neon's HTTP endpoint takes at most 10 MB a request, so one atomic write holds about 500 new chunks.
describe("engram ingest on the Neon HTTP driver", () => {
  let database: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    database = await createDatabase();
    const neon = await sharedNeonServer();
    env = {
      ...process.env,
      DATABASE_URL: neonConnectionString(database, neon.port),
      DATABASE_DRIVER: "neon-http",
      NEON_FETCH_ENDPOINT: neon.url,
      LOG_LEVEL: "silent",
      EMBEDDING_PROVIDER: "offline",
    };
    delete env.OPENAI_API_KEY;
  });
  afterAll(() => dropDatabase(database));

  it("stores a folder its batches would overflow in smaller batches, and fails only a file too large alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "engram-cli-neon-"));
    // Text that never repeats (a repeated passage reuses its vector, and only new vectors fill a write).
    const prose = (i: number, chars: number) => {
      let seed = i + 1;
      const words: string[] = [];
      for (let length = 0; length < chars; ) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        const word = `w${seed % 100_000}`;
        words.push(word);
        length += word.length + 1;
      }
      return `# Note ${i}\n\n${words.join(" ").slice(0, chars)}\n`;
    };
    // 12 files of 150,000 characters: about 800 chunks in the CLI's one batch (4,000,000 characters), some 15 MB.
    for (let i = 0; i < 12; i++) writeFileSync(join(dir, `note-${String(i).padStart(2, "0")}.md`), prose(i, 150_000));
    // And one whose 1,000,000 characters alone make more than Neon takes in one write.
    writeFileSync(join(dir, "zz-huge.md"), prose(99, 999_000));

    const res = await runEngram(["ingest", dir, "--json"], env, 240_000);
    const summary = JSON.parse(res.stdout);
    // Before, the first batch's refusal stored nothing: "stopped after storing 0 of 13 files".
    expect(res.code).toBe(1);
    expect(summary).toMatchObject({ files: 13, documents: 12, created: 12, failed: 1 });
    expect(summary.skipped).toEqual([
      {
        path: join(dir, "zz-huge.md"),
        reason: expect.stringMatching(
          /^too large for one write to the database: about 1\d\.\d MB, its limit 10 MB; split the file \(request\.too_large\)$/,
        ),
        failed: true,
      },
    ]);
  }, 300_000);
});
