import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { binaryRealArray, vectorLiteral } from "../../core/db/sql";

/** The wire format written the slow, obvious way: big-endian header, then (length 4, float) per element. */
function reference(vectors: number[][], dimensions: number): Buffer {
  const count = vectors.length * dimensions;
  const view = new DataView(new ArrayBuffer(20 + count * 8));
  [1, 0, 700, count, 1].forEach((word, i) => view.setUint32(4 * i, word));
  let offset = 20;
  for (const vector of vectors) {
    for (let i = 0; i < dimensions; i++) {
      view.setInt32(offset, 4);
      view.setFloat32(offset + 4, vector[i] as number);
      offset += 8;
    }
  }
  return Buffer.from(view.buffer);
}

describe("binaryRealArray", () => {
  it("writes Postgres' binary real[] format, byte for byte", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }).chain((d) =>
          fc.tuple(
            fc.constant(d),
            fc.array(fc.array(fc.float({ noNaN: true }), { minLength: d, maxLength: d }), { maxLength: 5 }),
          ),
        ),
        ([dimensions, vectors]) => {
          expect(binaryRealArray(vectors, dimensions).equals(reference(vectors, dimensions))).toBe(true);
        },
      ),
    );
  });

  it("reads each vector's floats back in order", () => {
    const vectors = [Float32Array.of(0.5, -1.25, 3), Float32Array.of(1e-3, 0, -0)];
    const buffer = binaryRealArray(vectors, 3);
    expect(buffer.readInt32BE(12)).toBe(6);
    const floats = Array.from({ length: 6 }, (_, i) => buffer.readFloatBE(20 + 8 * i + 4));
    expect(floats).toEqual([0.5, -1.25, 3, Math.fround(1e-3), 0, -0]);
  });
});

describe("vectorLiteral", () => {
  it("keeps float4 precision in 7 significant digits", () => {
    expect(vectorLiteral([0.1, -2, 1 / 3])).toBe("[0.1000000,-2.000000,0.3333333]");
  });
});
