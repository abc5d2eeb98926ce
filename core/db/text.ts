/**
 * What Postgres can store as text: never NUL (text and jsonb refuse it), and no unpaired UTF-16
 * surrogates (jsonb refuses them; `pg` would silently turn them into U+FFFD in text columns).
 * Validation refuses such input with a 400 instead of the database failing the query.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what this finds
export const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The path (keys and indexes) of the first string or key in a JSON value that Postgres cannot store, if any. */
export function unstorableAt(value: unknown, path: (string | number)[] = []): (string | number)[] | undefined {
  if (typeof value === "string") return UNSTORABLE.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorableAt(value[i], [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (UNSTORABLE.test(key)) return [...path, key];
      const found = unstorableAt(item, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}
