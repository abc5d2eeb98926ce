/** A small least-recently-used map whose entries also expire (process clock). */
export function lru<T>(max: number) {
  const entries = new Map<string, { value: T; until: number }>();
  return {
    get(key: string): T | undefined {
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      if (entry.until <= Date.now()) return undefined;
      entries.set(key, entry); // most recently used last
      return entry.value;
    },
    set(key: string, value: T, ttlSeconds: number): void {
      entries.delete(key);
      entries.set(key, { value, until: Date.now() + ttlSeconds * 1000 });
      if (entries.size > max) entries.delete(entries.keys().next().value as string);
    },
    clear: () => entries.clear(),
  };
}
