import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { binaryVectorArray, compile, constant, vectorLiteral } from "../../core/db/sql";

const OID = 16_385;

/** The wire format written the slow, obvious way: big-endian array header, then per element its length and
 * pgvector's binary vector (int16 dimensions, int16 unused, float4s). */
function reference(vectors: number[][], dimensions: number): Buffer {
  const each = 4 + 4 * dimensions;
  const view = new DataView(new ArrayBuffer(20 + vectors.length * (4 + each)));
  for (const [i, word] of [1, 0, OID, vectors.length, 1].entries()) view.setUint32(4 * i, word);
  let offset = 20;
  for (const vector of vectors) {
    view.setInt32(offset, each);
    view.setInt16(offset + 4, dimensions);
    view.setInt16(offset + 6, 0);
    for (let i = 0; i < dimensions; i++) view.setFloat32(offset + 8 + 4 * i, vector[i] as number);
    offset += 4 + each;
  }
  return Buffer.from(view.buffer);
}

describe("binaryVectorArray", () => {
  it("writes Postgres' binary array of pgvector vectors, byte for byte", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 8 })
          .chain((d) =>
            fc.tuple(
              fc.constant(d),
              fc.array(fc.array(fc.float({ noNaN: true }), { minLength: d, maxLength: d }), { maxLength: 5 }),
            ),
          ),
        ([dimensions, vectors]) => {
          expect(binaryVectorArray(vectors, dimensions, OID).equals(reference(vectors, dimensions))).toBe(true);
        },
      ),
    );
  });

  it("reads each vector's floats back in order", () => {
    const buffer = binaryVectorArray([Float32Array.of(0.5, -1.25, 3), Float32Array.of(1e-3, 0, -0)], 3, OID);
    expect([buffer.readInt32BE(8), buffer.readInt32BE(12)]).toEqual([OID, 2]);
    const second = 20 + 4 + 16;
    expect([buffer.readInt32BE(second), buffer.readInt16BE(second + 4)]).toEqual([16, 3]);
    const floats = [0, 1, 2].map((i) => buffer.readFloatBE(second + 8 + 4 * i));
    expect(floats).toEqual([Math.fround(1e-3), 0, -0]);
  });
});

describe("vectorLiteral", () => {
  it("keeps float4 precision in 7 significant digits", () => {
    expect(vectorLiteral([0.1, -2, 1 / 3])).toBe("[0.1000000,-2.000000,0.3333333]");
  });
});

describe("constant", () => {
  const text = (value: string | number) => compile(sql`select ${constant(value)}`);
  it("writes the value into the text, quoted so that no quote or backslash ends it", () => {
    expect(text("text-embedding-3-small")).toEqual({ text: "select E'text-embedding-3-small'", params: [] });
    expect(text("it's \\'; drop table x; --").text).toBe("select E'it''s \\\\''; drop table x; --'");
    expect(text(40).text).toBe("select 40");
    expect(text(0.25).text).toBe("select 0.25");
  });
  it("refuses what is no number in SQL", () => {
    expect(() => constant(Number.NaN)).toThrow(/finite/);
    expect(() => constant(Number.POSITIVE_INFINITY)).toThrow(/finite/);
  });
});
