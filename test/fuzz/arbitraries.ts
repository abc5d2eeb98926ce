/**
 * fast-check arbitraries for fuzzing the HTTP routes: hostile strings, numbers and keys, and
 * request bodies generated as JSON *text* (so they can hold what a JS object literal cannot:
 * `__proto__` keys, duplicate keys, number tokens like `1e999`, nesting thousands deep). Each
 * route's body mixes mostly well-formed fields (so requests reach the database) with hostile ones.
 */
import fc from "fast-check";
import { prose } from "../../kit/factories";

/** Strings that have broken parsers, SQL, JSON paths, Postgres text and URL decoding before. */
export const NASTY: readonly string[] = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\uD800",
  "\uDFFF",
  "x\uDBFFy",
  "\uDC00\uD800",
  "\uFEFF",
  "\u202Eevil",
  "\u200B",
  "\r\n",
  "\t",
  "'",
  "''",
  '"',
  "\\",
  "\\u0000",
  "'; drop table documents; --",
  "' or '1'='1",
  "%",
  "_",
  "%_%",
  "$1",
  "$$",
  "?",
  "::text",
  "$.a[*] ? (@ > 1)",
  "$..*",
  "@>",
  "{}",
  "[]",
  "null",
  "true",
  "0",
  "-0",
  "1e309",
  "NaN",
  "__proto__",
  "constructor",
  "prototype",
  "../../etc/passwd",
  "%00",
  "%ZZ",
  "%E0%A4%A",
  "%ED%A0%80",
  "a/b",
  "&x=1",
  "#frag",
  "\u0130",
  "\u0131",
  "ǅ",
  "ａ",
  "а",
  "e\u0301",
  "🧠",
  "👩‍👩‍👧‍👦",
  "x".repeat(257),
  "y".repeat(3000),
  "<script>alert(1)</script>",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, as a client would send it
  "${jndi:ldap://x}",
  "{{7*7}}",
  '"unterminated',
  "!!! & | <-> :*",
  "-",
  "or",
];

/** Any UTF-16 code units at all, lone surrogates and NUL included. */
const codeUnits = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 16 })
  .map((units) => String.fromCharCode(...units));

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom(...NASTY), { maxLength: 3 }).map((parts) => parts.join("")) },
  { weight: 2, arbitrary: codeUnits },
);

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "__proto__",
      "constructor",
      "prototype",
      "toString",
      "valueOf",
      "hasOwnProperty",
      "__defineGetter__",
      "$where",
      "$gt",
      "a.b",
      "a[0]",
      "",
      " ",
      "\u0000",
      "\uD800",
      "id",
      "content",
      "documents",
      "query",
      "filter",
      "importance",
      "metadata",
      "ttlSeconds",
      "conversationId",
      "source",
      "title",
    ),
  },
  { weight: 1, arbitrary: hostileString },
);

/** Number tokens as JSON text: edges of every limit, and tokens JSON.parse turns into Infinity or loses precision on. */
export const numberText: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom(
    "0",
    "-0",
    "1",
    "5",
    "10",
    "11",
    "1.5",
    "1e1",
    "1E2",
    "1e999",
    "-1e999",
    "123456789012345678901234567890",
    "9007199254740993",
    "5e-324",
    "-1",
    "50",
    "51",
    "100",
    "101",
    "2147483648",
    "315360000",
    "315360001",
  ),
);

export const str = (s: string) => JSON.stringify(s);
export const arrayText = (items: readonly string[]) => `[${items.join(",")}]`;
export const objectText = (entries: readonly (readonly [string, string])[]) =>
  `{${entries.map(([k, v]) => `${str(k)}:${v}`).join(",")}}`;

const scalarText = fc.oneof(fc.constantFrom("null", "true", "false"), hostileString.map(str), numberText);

/** Any JSON value, as text, keys hostile. */
export const anyJson: fc.Arbitrary<string> = fc.letrec<{ json: string }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalarText,
    fc.array(tie("json"), { maxLength: 4 }).map(arrayText),
    fc.array(fc.tuple(hostileKey, tie("json")), { maxLength: 4 }).map(objectText),
  ),
})).json;

/** Arrays or objects nested far deeper than any real request (recursive validators overflow the stack). */
export const deepJson: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 200, max: 30_000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? `${"[".repeat(depth)}1${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`,
  );

/** Mostly the valid value, sometimes anything. */
export const field = (valid: fc.Arbitrary<string>, hostileWeight = 1) =>
  fc.oneof({ weight: 5, arbitrary: valid }, { weight: hostileWeight, arbitrary: fc.oneof(anyJson, deepJson) });

/**
 * A JSON object text from optional fields, sometimes with hostile extra keys (prototype
 * pollution, duplicates of real keys).
 */
export function objectOf(fields: Record<string, fc.Arbitrary<string>>, required: string[] = []) {
  return fc
    .tuple(
      fc.record(fields, { requiredKeys: required }),
      fc.oneof(
        { weight: 6, arbitrary: fc.constant([] as [string, string][]) },
        { weight: 1, arbitrary: fc.array(fc.tuple(hostileKey, anyJson), { minLength: 1, maxLength: 2 }) },
      ),
    )
    .map(([record, extra]) => objectText([...Object.entries(record as Record<string, string>), ...extra]));
}

/** A body: usually the well-formed object, sometimes any JSON, deep JSON, or broken JSON text. */
export function bodyOf(valid: fc.Arbitrary<string>) {
  return fc.oneof(
    { weight: 12, arbitrary: valid },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: deepJson },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.nat())
        .map(([text, cut]) => text.slice(0, text.length ? cut % text.length : 0))
        .filter((text) => text.length > 0),
    },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "nul", "{", "}", '{"a":}', "\u0000", "[1,]", "{'a':1}", "NaN") },
  );
}

/** Readable text that is valid content (prose, any graphemes, unicode-heavy mixes). */
export const contentText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 5000 }).map((seed) => prose(seed, 1 + (seed % 3), 3)) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.constantFrom("refund", "🧠", "e\u0301", "ǅ", "עברית", "中文", "\u202E", "\t", "\n\n", "'", "%_"), {
        minLength: 1,
        maxLength: 30,
      })
      .map((parts) => `x ${parts.join(" ")}`),
  },
);

/** An ISO-like timestamp: often valid, with calendar and offset edges Postgres might refuse. */
export const timestampText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(0, 1, 1969, 1970, 2000, 2024, 2026, 9999),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 31 }),
        fc.integer({ min: 0, max: 23 }),
        fc.constantFrom("", ".5", ".123456789"),
        fc.constantFrom("Z", "+00:00", "+14:00", "-12:00", "+23:59", "-23:59", "+0530", "+15:59", "-16:00"),
      )
      .map(
        ([y, m, d, h, frac, offset]) =>
          `${String(y).padStart(4, "0")}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}T${String(h).padStart(2, "0")}:00:00${frac}${offset}`,
      ),
  },
  { weight: 1, arbitrary: hostileString },
);

/** A search (and chat) filter object. */
export function filterText(ids: readonly string[], conversations: readonly string[]) {
  const idText = fc.oneof(fc.constantFrom(...ids), hostileString).map(str);
  return objectOf({
    metadata: field(
      fc.oneof(
        fc.constantFrom('{"team":"sales"}', '{"n":1}', '{"nested":{"deep":[1,2]}}', "{}", '{"a":null}'),
        fc.array(fc.tuple(hostileKey, anyJson), { maxLength: 3 }).map(objectText),
      ),
    ),
    documentIds: field(fc.array(idText, { maxLength: 4 }).map(arrayText)),
    conversationId: field(fc.oneof(fc.constantFrom(...conversations), hostileString).map(str)),
    minImportance: field(numberText),
    createdAfter: field(timestampText.map(str)),
    createdBefore: field(timestampText.map(str)),
  });
}

/** Query string values: numbers at and past the limits, booleans in many spellings, hostile text. */
export const queryValue: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("1", "0", "-1", "20", "100", "101", "1e2", "1e999", "0x10", " 5", "5abc", "Infinity", "NaN", ""),
  fc.constantFrom("true", "false", "1", "0", "TRUE", "yes", "tru", " true"),
  hostileString,
);

/** Cursors: base64url of `time|key` and `[time, id]` with hostile parts, and plain garbage. */
export const cursorText: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      fc.oneof(timestampText, fc.constantFrom("1", "0", "2001", "Tue", "1e10", "-271821-04-20", "+275760-09-13")),
      fc.constantFrom("1", "0", "-1", "1.5", "99999999999999999999", "9223372036854775808", "9223372036854775807"),
    )
    .map(([at, key]) => Buffer.from(`${at}|${key}`).toString("base64url")),
  fc
    .tuple(
      fc.oneof(timestampText, fc.constantFrom("1", "0", "2001", "Tue", "1e10")),
      fc.oneof(hostileString, fc.constantFrom("conv_1")),
    )
    .map(([at, id]) => Buffer.from(JSON.stringify([at, id])).toString("base64url")),
  anyJson.map((json) => Buffer.from(json).toString("base64url")),
  hostileString,
);

/** Percent-encodes like encodeURIComponent, leaving unpaired surrogates raw (which it cannot encode). */
export function encodePathSegment(value: string): string {
  let out = "";
  for (const char of value) out += /^[\uD800-\uDFFF]$/.test(char) ? char : encodeURIComponent(char);
  return out;
}

/** A path id, URL-encoded the way a client would (mostly) or raw. */
export function pathId(ids: readonly string[]) {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...ids).map(encodePathSegment) },
    { weight: 3, arbitrary: hostileString.filter((s) => s.length > 0).map(encodePathSegment) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "%",
        "%00",
        "%ZZ",
        "%E0%A4%A",
        "%ED%A0%80",
        "..",
        ".",
        "a%2Fb",
        "%20",
        "x".repeat(5000),
      ),
    },
    { weight: 1, arbitrary: hostileString.filter((s) => s.length > 0 && !s.includes("/") && !s.includes("?")) },
  );
}
