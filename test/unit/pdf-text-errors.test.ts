import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { extract } from "../../core/extract";
import { refusal } from "../../kit/errors";

// pdf.js reads every damaged page this suite could craft without throwing (it skips what it cannot read), so the
// failure of one page's text is made here: what is tested is what the caller is told, not how pdf.js fails.
vi.mock("unpdf", async (original) => {
  const real = await original<typeof import("unpdf")>();
  return {
    ...real,
    getDocumentProxy: async (...args: Parameters<typeof real.getDocumentProxy>) => {
      const pdf = await real.getDocumentProxy(...args);
      const getPage = pdf.getPage.bind(pdf);
      pdf.getPage = async (n: number) => {
        const page = await getPage(n);
        if (n === 2) page.getTextContent = () => Promise.reject(new Error("Unknown font program"));
        return page;
      };
      return pdf;
    },
  };
});

describe("a PDF page whose text pdf.js cannot read", () => {
  it("is a damaged file (422 extract.corrupt), not a server error", async () => {
    const bytes = readFileSync(join(import.meta.dirname, "../fixtures/extract/handbook.pdf"));
    const error = await refusal(extract(new Uint8Array(bytes), { name: "handbook.pdf" }));
    expect([error.status, error.code]).toEqual([422, "extract.corrupt"]);
  });
});
