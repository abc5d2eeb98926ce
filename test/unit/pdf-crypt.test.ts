/**
 * core/extract/pdf-crypt.ts: the Standard security handler's file keys and stream decryption, checked against qpdf,
 * which made the encrypted fixtures and prints their keys (`qpdf --show-encryption-key`), and against handbook.pdf,
 * whose streams qpdf encrypted as they were (`--stream-data=preserve`, test/fixtures/extract/README.md).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decrypt, fileKey, type Method, rc4, type Standard } from "../../core/extract/pdf-crypt";

const FIXTURES = join(__dirname, "../fixtures/extract");
const fixture = (name: string) => readFileSync(join(FIXTURES, name));
const hex = (bytes: Uint8Array | undefined) => (bytes ? Buffer.from(bytes).toString("hex") : bytes);

/** The /Encrypt entries of a file as qpdf writes them (hex strings and integers, one dictionary), and its /ID. */
function standardOf(file: Buffer): Standard {
  const text = file.toString("latin1");
  const at = text.indexOf("/Filter /Standard");
  const dict = text.slice(text.lastIndexOf("obj", at), text.indexOf("endobj", at)).replace(/<< \/CF <<.*?>> >>/, "");
  const string = (key: string) => Buffer.from(new RegExp(`/${key} <([0-9a-f]*)>`).exec(dict)?.[1] ?? "", "hex");
  const integer = (key: string) => Number(new RegExp(`/${key} (-?\\d+)`).exec(dict)?.[1]);
  const version = integer("V");
  return {
    version,
    revision: integer("R"),
    bits: integer("Length") || 40,
    owner: string("O"),
    user: string("U"),
    userKey: string("UE"),
    permissions: integer("P"),
    metadata: version >= 4 && !dict.includes("/EncryptMetadata false"),
    id: Buffer.from(/\/ID \[ ?<([0-9a-f]+)>/.exec(text)?.[1] ?? "", "hex"),
  };
}

/**
 * Each stream of a file qpdf wrote (`12 0 obj << … /Length n >> stream`), its object's numbers and data, but the
 * object and cross-reference streams qpdf made (not handbook.pdf's, and the latter not encrypted).
 */
function streamsOf(file: Buffer): { num: number; gen: number; data: Buffer }[] {
  const text = file.toString("latin1");
  const streams = text.matchAll(/(\d+) (\d+) obj\n<<([^\n]*?)\/Length (\d+)([^\n]*)>>\nstream\n/g);
  return Array.from(streams)
    .filter((m) => !/\/Type \/(ObjStm|XRef)/.test(m[0]))
    .map((m) => ({
      num: Number(m[1]),
      gen: Number(m[2]),
      data: file.subarray(m.index + m[0].length, m.index + m[0].length + Number(m[4])),
    }));
}

describe("the Standard security handler, for a file that opens without a password", () => {
  it("encrypts with RC4 as RFC 6229's first test vector does", () => {
    expect(hex(rc4(Buffer.from("0102030405", "hex"), new Uint8Array(16)))).toBe("b2396305f03dc027ccc3524a0a1118a8");
  });

  it("finds the file key the empty user password opens, the one qpdf prints, under every revision", () => {
    const keys: [string, string][] = [
      ["bomb-rc4-40.pdf", "1a4f3167d3"], // R2, RC4 40-bit
      ["bomb-rc4-128.pdf", "2192da7b2bcdf98e351400385ee67ca9"], // R3, RC4 128-bit
      ["handbook-rc4.pdf", "ed12eba858ffbfe9d3324806e12c912e"],
      ["bomb-aes128.pdf", "ddd289bc66ea4b904c1ced1c13060d7d"], // R4, AES-128
      ["bomb-aes256.pdf", "24f14e86be36943832d3d09b0ba3b7e507e2da7a0ebacc60b431771aa1460405"], // R6, AES-256
      ["handbook-aes256.pdf", "943bc7779341509c280cbf5617518b709aa5e198044cba6bc520ce9bc75b1118"],
    ];
    for (const [name, key] of keys) expect([name, hex(fileKey(standardOf(fixture(name))))]).toEqual([name, key]);
    // R5, Acrobat 9's AES-256 (one SHA-256, no rounds): `qpdf --encrypt "" owner 256 --force-R5 -- handbook.pdf`.
    const r5: Standard = {
      ...standardOf(fixture("handbook-aes256.pdf")),
      revision: 5,
      user: Buffer.from(
        "9e5914a4969b1c983533685146ff26f1f464651592cf3e2e0795b8c3ca7cc5cf90361aa12f3e2d6c79ab32feda1ef511",
        "hex",
      ),
      userKey: Buffer.from("a886b2ac240749c523fab2f2faca737a30219e42d316e77d892305f97fbfb132", "hex"),
    };
    expect(hex(fileKey(r5))).toBe("7fbd6b73472a56336d2da131c61c0c1e451bece6205f8fd98c8bfc21a15a8aa2");
  });

  it("finds no key when the user password is not empty, or the file's /ID is not the one its /U was made with", () => {
    // encrypted.pdf: user password "secret", AES-256 (R6).
    expect(fileKey(standardOf(fixture("encrypted.pdf")))).toBeUndefined();
    for (const name of ["bomb-rc4-40.pdf", "bomb-rc4-128.pdf", "bomb-aes128.pdf"]) {
      const standard = standardOf(fixture(name));
      const id = Buffer.from(standard.id);
      id[0] = (id[0] as number) ^ 1;
      expect([name, fileKey({ ...standard, id })]).toEqual([name, undefined]);
    }
  });

  it("decrypts every stream of the encrypted handbooks to the bytes of handbook.pdf's, and to noise with a wrong key", () => {
    const plain = fixture("handbook.pdf");
    const cases: [string, Method][] = [
      ["handbook-aes256.pdf", "AESV3"],
      ["handbook-rc4.pdf", "V2"],
    ];
    for (const [name, method] of cases) {
      const file = fixture(name);
      const key = fileKey(standardOf(file)) as Uint8Array;
      const streams = streamsOf(file);
      expect(streams.length).toBe(10); // handbook.pdf's: six pages' contents, two fonts, their two ToUnicode maps
      for (const { num, gen, data } of streams) {
        const decrypted = decrypt(data, method, key, { num, gen }) as Uint8Array;
        expect([name, num, plain.indexOf(decrypted)]).not.toEqual([name, num, -1]);
        const wrong = Uint8Array.from(key, (byte, i) => (i === 0 ? byte ^ 1 : byte));
        expect([name, num, plain.indexOf(decrypt(data, method, wrong, { num, gen }) as Uint8Array)]).toEqual([
          name,
          num,
          -1,
        ]);
      }
    }
    // RC4's and AES-128's keys are the object's: without its numbers there is none.
    expect(decrypt(new Uint8Array(32), "V2", new Uint8Array(16), undefined)).toBeUndefined();
  });

  it("reads AES data as pdf.js does: no IV is nothing, a trailing partial block is dropped, bad padding is kept", () => {
    const key = new Uint8Array(32);
    expect(decrypt(new Uint8Array(15), "AESV3", key, undefined)).toEqual(new Uint8Array());
    expect((decrypt(new Uint8Array(16 + 32 + 5), "AESV3", key, undefined) as Uint8Array).length).toBe(32);
  });
});
