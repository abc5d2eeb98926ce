/** What the `engram` command prints for people (not --json): the start banner, search results and citations. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { engram as runEngram, type ServerProcess, startServer } from "../../kit/cli";
import { createDatabase, dropDatabase, pgUrl } from "../../kit/db";

let database: string;
let env: NodeJS.ProcessEnv;
const engram = (args: string[], extra: NodeJS.ProcessEnv = {}) => runEngram(args, { ...env, ...extra });

beforeAll(async () => {
  database = await createDatabase();
  env = {
    ...process.env,
    DATABASE_URL: pgUrl(database),
    ENGRAM_DATA_DIR: join(mkdtempSync(join(tmpdir(), "engram-cli-text-")), "data"),
    LOG_LEVEL: "silent",
  };
  for (const name of [
    "DATABASE_DRIVER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CHAT_BASE_URL",
    "EMBEDDING_PROVIDER",
    "CHAT_PROVIDER",
    "ENGRAM_URL",
    "ENGRAM_API_KEY",
    "ENGRAM_USER_ID",
  ]) {
    delete env[name];
  }
});
afterAll(() => dropDatabase(database));

describe("engram keys list on a new database", () => {
  it("says the default tenant has no keys yet, and refuses a tenant nobody made", async () => {
    expect(await engram(["keys", "list"])).toMatchObject({ code: 0, stdout: "no keys for tenant local\n" });
    expect(await engram(["keys", "list", "--tenant", "nosuch"])).toMatchObject({
      code: 1,
      stderr: "engram: No tenant named nosuch.\n",
    });
  });
});

describe("engram start's banner", () => {
  /** The banner `engram start` prints with `extra` in its environment. */
  async function banner(extra: NodeJS.ProcessEnv): Promise<string> {
    const server = await startServer({ ...env, ...extra, PORT: "0", LOG_LEVEL: "warn" });
    try {
      await vi.waitFor(() => expect(server.output()).toContain("local key:"), { timeout: 10_000 });
      return server.output();
    } finally {
      await server.stop();
    }
  }

  it.each([
    ["with a key set", { OPENAI_API_KEY: "sk-never-used" }],
    ["without a key", {}],
  ])(
    "names EMBEDDING_PROVIDER and CHAT_PROVIDER, not a missing key, when they chose offline %s",
    async (_, key) => {
      const output = await banner({ ...key, EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" });
      expect(output).toMatch(/embedder: {2}offline \S+, 1536 dims \(offline: EMBEDDING_PROVIDER=offline\)\n/);
      expect(output).toContain("answers:   extractive answers (CHAT_PROVIDER=extractive)\n");
      expect(output).not.toContain("no OPENAI_API_KEY");
      expect(output).not.toContain("no chat model configured");
    },
    120_000,
  );

  it("says there is no OPENAI_API_KEY when that is why it is offline", async () => {
    const output = await banner({});
    expect(output).toMatch(/embedder: {2}offline \S+, 1536 dims \(offline: no OPENAI_API_KEY\)\n/);
    expect(output).toContain("answers:   extractive answers (no chat model configured)\n");
  }, 120_000);
});

describe("engram search and chat", () => {
  it("name each result's and citation's space, so two documents of the same id can be told apart", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-scope-"));
    const record = (content: string) => `${JSON.stringify({ id: "parking", title: "Parking", content })}\n`;
    writeFileSync(join(folder, "shared.jsonl"), record("Visitors park in the north lot, level 2, free of charge."));
    writeFileSync(join(folder, "mine.jsonl"), record("My parking space is in the north lot, level 2, bay 17."));
    const local = { EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" };
    const shared = await engram(["ingest", join(folder, "shared.jsonl"), "--tenant", "scopes"], local);
    const mine = await engram(["ingest", join(folder, "mine.jsonl"), "--tenant", "scopes", "--user", "maya"], local);
    expect([shared.code, mine.code]).toEqual([0, 0]);

    const search = await engram(["search", "north lot parking level 2", "--tenant", "scopes", "--user", "maya"], local);
    expect(search.code).toBe(0);
    const results = search.stdout.split("\n").filter((line) => /^\d+\. /.test(line));
    expect(results.map((line) => /\(parking, (\w+), /.exec(line)?.[1]).sort()).toEqual(["shared", "user"]);

    const chat = await engram(["chat", "Where is my parking space?", "--tenant", "scopes", "--user", "maya"], local);
    expect(chat.code).toBe(0);
    const citations = chat.stdout.split("\n").filter((line) => /^ {2}\[\d+\] /.test(line));
    expect(citations.length).toBeGreaterThan(0);
    for (const line of citations) expect(line).toMatch(/^ {2}\[\d+\] Parking \(parking, (user|shared)\)$/);
    expect(citations.some((line) => line.endsWith("(parking, user)"))).toBe(true);
  }, 120_000);
});

describe("engram search and chat --scope", () => {
  const local = { EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" };
  let server: ServerProcess | undefined;
  let key = "";

  beforeAll(async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-scope-flag-"));
    const record = (id: string, content: string) => `${JSON.stringify({ id, title: id, content })}\n`;
    writeFileSync(join(folder, "shared.jsonl"), record("lobby", "The lobby coffee machine takes oat milk pods."));
    writeFileSync(join(folder, "alice.jsonl"), record("desk", "Alice's coffee machine takes oat milk pods too."));
    const shared = await engram(["ingest", join(folder, "shared.jsonl"), "--tenant", "scoped"], local);
    const alice = await engram(["ingest", join(folder, "alice.jsonl"), "--tenant", "scoped", "--user", "alice"], local);
    const created = await engram(["keys", "create", "--tenant", "scoped"], local);
    expect([shared.code, alice.code, created.code]).toEqual([0, 0, 0]);
    key = created.stdout.trim();
    server = await startServer({ ...env, ...local, PORT: "0", LOG_LEVEL: "warn" });
  }, 120_000);
  afterAll(() => server?.stop());

  /** `engram search` then `engram chat` as alice in `scope`: the spaces of the results and of the citations. */
  async function spaces(target: string[], scope: string) {
    const as = [...target, "--user", "alice", "--scope", scope, "--json"];
    const search = await engram(["search", "coffee machine oat milk pods", ...as], local);
    const chat = await engram(["chat", "Which pods does the coffee machine take?", ...as], local);
    expect([search.code, chat.code], search.stderr + chat.stderr).toEqual([0, 0]);
    const found = JSON.parse(search.stdout).results.map((r: { scope: string }) => r.scope);
    const cited = JSON.parse(chat.stdout).citations.map((c: { scope: string }) => c.scope);
    return { found: [...new Set(found)], cited: [...new Set(cited)] };
  }

  it.each([
    ["the local store", () => ["--tenant", "scoped"]],
    ["a deployed Engram (--url)", () => ["--url", server?.url ?? "", "--key", key]],
  ])(
    "reads only the space asked for from %s",
    async (_, target) => {
      expect(await spaces(target(), "all")).toEqual({
        found: expect.arrayContaining(["user", "shared"]),
        cited: expect.arrayContaining(["user", "shared"]),
      });
      expect(await spaces(target(), "shared")).toEqual({ found: ["shared"], cited: ["shared"] });
      expect(await spaces(target(), "user")).toEqual({ found: ["user"], cited: ["user"] });
    },
    120_000,
  );

  it("refuses another --scope in one line naming the allowed values, with a non-zero exit", async () => {
    for (const command of ["search", "chat"]) {
      const res = await engram([command, "coffee", "--tenant", "scoped", "--scope", "mine"], local);
      expect([res.code, res.stdout]).toEqual([1, ""]);
      expect(res.stderr).toMatch(
        /^engram: option '--scope <scope>' argument 'mine' is invalid\. Allowed choices are all, user, shared\..*\n$/,
      );
    }
  }, 120_000);
});

describe("engram's output for people", () => {
  const local = { EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" };
  // A control character but the newline that ends a line.
  const CONTROL = /[^\P{Cc}\n]/u;
  const BIDI = /\p{Bidi_Control}/u;

  it("shows the control characters of stored text and of file names, never sends them to the terminal", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-escapes-"));
    const text = "Escape test about wombats \x1b[31mRED\x1b[0m and \x1b]0;pwned\x07 title\n";
    writeFileSync(join(folder, "esc.txt"), text);
    const record = { id: "marsupials", title: "Wombats\x1b[2J\x9b", content: "Wombats dig burrows \x1b[5mblink." };
    writeFileSync(join(folder, "records.jsonl"), `${JSON.stringify(record)}\n`);
    const newline = join(mkdtempSync(join(tmpdir(), "engram-cli-escapes-")), "new\nline.md");
    writeFileSync(newline, "");
    const ingested = await engram(["ingest", folder, newline, "--tenant", "escapes"], local);
    expect(ingested.code).toBe(1);
    expect(ingested.stdout).not.toMatch(CONTROL);
    const failed = ingested.stdout.split("\n").filter((line) => line.startsWith("  failed "));
    expect(failed).toEqual([expect.stringMatching(/^ {2}failed .*new\\x0aline\.md: .*\(extract\.empty\)$/)]);

    const search = await engram(["search", "wombats", "--tenant", "escapes"], local);
    expect(search.code).toBe(0);
    expect(search.stdout).not.toMatch(CONTROL);
    expect(search.stdout).toContain("wombats \\x1b[31mRED\\x1b[0m and \\x1b]0;pwned\\x07 title");
    expect(search.stdout).toContain("Wombats\\x1b[2J\\x9b");

    const chat = await engram(["chat", "Where do wombats dig burrows?", "--tenant", "escapes"], local);
    expect(chat.code).toBe(0);
    expect(chat.stdout).not.toMatch(CONTROL);
    expect(chat.stdout).toContain("\\x1b[");
    expect(chat.stdout).toMatch(/^ {2}\[\d+\] Wombats\\x1b\[2J\\x9b \(marsupials, shared\)$/m);

    // --json is JSON's own escaping, unchanged.
    const json = await engram(["search", "wombats", "--tenant", "escapes", "--json"], local);
    expect(JSON.parse(json.stdout).results.map((r: { content: string }) => r.content)).toContain(text.trim());
  }, 120_000);

  it("shows the bidirectional controls of a stored title and passage as escapes, and keeps them in --json", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-bidi-"));
    // An RLO shows the title as "Invoice exe.pdf"; the isolate would reorder the passage's words after it.
    const record = {
      id: "invoice",
      title: "Invoice \u202efdp.exe",
      content: "Quokkas smile at \u2067visitors\u2069 \u200fon Rottnest\u061c island.",
    };
    writeFileSync(join(folder, "records.jsonl"), `${JSON.stringify(record)}\n`);
    expect((await engram(["ingest", folder, "--tenant", "bidi"], local)).code).toBe(0);

    const search = await engram(["search", "quokkas", "--tenant", "bidi"], local);
    expect(search.code).toBe(0);
    expect(search.stdout).not.toMatch(BIDI);
    expect(search.stdout).toContain("Invoice \\u202efdp.exe");
    expect(search.stdout).toContain("smile at \\u2067visitors\\u2069 \\u200fon Rottnest\\u061c island.");

    const chat = await engram(["chat", "Where do quokkas smile?", "--tenant", "bidi"], local);
    expect(chat.code).toBe(0);
    expect(chat.stdout).not.toMatch(BIDI);
    expect(chat.stdout).toMatch(/^ {2}\[\d+\] Invoice \\u202efdp\.exe \(invoice, shared\)$/m);

    const json = await engram(["search", "quokkas", "--tenant", "bidi", "--json"], local);
    expect(JSON.parse(json.stdout).results[0]).toMatchObject({ title: record.title, content: record.content });
  }, 120_000);

  it("keeps an error quoting what was typed to one line a terminal only shows", async () => {
    const res = await engram(["chat", "hello", "--conversation", "x", "--scope", "mine\x1b[31m"], local);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("mine\\x1b[31m");
    expect(res.stderr).not.toMatch(CONTROL);
  });
});

describe("engram stats", () => {
  const local = { EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" };

  it("prints its counts a line each for people, and the API's answer on one line with --json", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-cli-stats-"));
    const records = [
      { id: "a", content: "Apples are picked in autumn.", conversationId: "conv_orchard", importance: 8 },
      { id: "b", content: "Pears ripen after picking.", conversationId: "conv_orchard", importance: 6 },
      { id: "c", content: "Plums are dried into prunes." },
    ];
    writeFileSync(join(folder, "fruit.jsonl"), records.map((r) => JSON.stringify(r)).join("\n"));
    expect((await engram(["ingest", folder, "--tenant", "counted"], local)).code).toBe(0);

    const json = await engram(["stats", "--tenant", "counted", "--json"], local);
    expect(json.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ tenant: "counted", documents: { total: 3 }, chunks: 3 });

    const human = await engram(["stats", "--tenant", "counted"], local);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^tenant +counted, the shared space\n/);
    expect(human.stdout).toMatch(/^documents +3\n/m);
    expect(human.stdout).toMatch(/^chunks +3\n/m);
    expect(human.stdout).toMatch(/^stale chunks +none\n/m);
    expect(human.stdout).toMatch(/^re-embedding +never run in this tenant\n/m);
    expect(human.stdout).toMatch(/^conversations +1: conv_orchard \(2 documents\)\n/m);
    expect(human.stdout).toMatch(/^importance +6\.33 on average\n/m);
    expect(human.stdout).toMatch(/^last ingest +20\d\d-\d\d-\d\dT[\d:.]+Z\n$/m);
    expect(human.stdout).not.toContain("{");

    // Configured for another model, every chunk stored is stale: its share is said, and what to do.
    const other = await engram(["stats", "--tenant", "counted"], { OPENAI_API_KEY: "sk-never-used" });
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(
      /^stale chunks +3 \(100\.0%\) of another model: keyword search finds them, vector search not until `engram reembed`\n/m,
    );
  }, 120_000);
});

describe("engram reembed --help", () => {
  it("shows --batch-size's default, as the README gives it", async () => {
    const help = await engram(["reembed", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}--batch-size <n> +chunks per batch \(default: 256[;)]/m);
  });
});
