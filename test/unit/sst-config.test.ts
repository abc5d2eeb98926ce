/**
 * sst.config.ts evaluated offline: SST's globals are recording stand-ins, so the test sees every
 * function, route, cron and link the real deploy would create, without AWS.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { routeKey, routes } from "../../core/api/routes";

interface Recorded {
  kind: string;
  name: string;
  args: Record<string, any>;
}

interface SstConfig {
  app(input: { stage: string }): { name: string; home: string; removal?: string; protect?: boolean };
  run(): Promise<Record<string, unknown>>;
}

const created: Recorded[] = [];
const apiRoutes = new Map<string, unknown>();
const arnOf = (name: string) => `arn:aws:lambda:us-east-1:123456789012:function:engram-test-${name}`;

class FunctionStandIn {
  readonly arn: string;
  readonly url: string;
  constructor(name: string, args: Record<string, any>) {
    created.push({ kind: "Function", name, args });
    this.arn = arnOf(name);
    this.url = `https://${name.toLowerCase()}.lambda-url.us-east-1.on.aws/`;
  }
}

const standIns = {
  $config: (input: SstConfig) => input,
  $app: { name: "engram", stage: "test" },
  sst: {
    Secret: class {
      constructor(
        readonly name: string,
        placeholder?: string,
      ) {
        created.push({ kind: "Secret", name, args: { placeholder } });
      }
    },
    aws: {
      Function: FunctionStandIn,
      ApiGatewayV2: class {
        readonly url = "https://api.example.execute-api.us-east-1.amazonaws.com";
        constructor(name: string, args: Record<string, any>) {
          created.push({ kind: "ApiGatewayV2", name, args });
        }
        route(key: string, handler: unknown) {
          expect(apiRoutes.has(key), `${key} is routed twice`).toBe(false);
          apiRoutes.set(key, handler);
        }
      },
      CronV2: class {
        constructor(name: string, args: Record<string, any>) {
          created.push({ kind: "CronV2", name, args });
        }
      },
    },
  },
};

const globals = globalThis as Record<string, unknown>;
let config: SstConfig;
let outputs: Record<string, unknown>;

beforeAll(async () => {
  Object.assign(globals, standIns);
  // A variable specifier keeps tsc from type-checking sst.config.ts against the project's tsconfig
  // (it is checked against SST's own types by scripts/typecheck.sh).
  const path = "../../sst.config";
  config = ((await import(/* @vite-ignore */ path)) as { default: SstConfig }).default;
  outputs = await config.run();
});

afterAll(() => {
  for (const key of Object.keys(standIns)) delete globals[key];
});

const functions = () => created.filter((c) => c.kind === "Function");
const fn = (name: string) => {
  const found = functions().find((c) => c.name === name);
  if (!found) throw new Error(`no function ${name}`);
  return found;
};
const capital = (name: string) => `${name[0]?.toUpperCase()}${name.slice(1)}`;
const cron = () => created.find((c) => c.kind === "CronV2") as Recorded;
/** Every Lambda the config makes: the named functions and the cron's inline one. */
const allLambdas = () => [
  ...functions().map((f) => ({ name: f.name, args: f.args })),
  { name: "Cleanup (cron)", args: cron().args.function as Record<string, any> },
];
const seconds = (duration: string) => {
  const [amount, unit] = duration.split(" ");
  return Number(amount) * (unit?.startsWith("minute") ? 60 : 1);
};

describe("sst.config.ts", () => {
  it("puts every route of the route table on the HTTP API, served by its function", () => {
    for (const route of routes) {
      expect(apiRoutes.get(routeKey(route)), routeKey(route)).toBe(arnOf(`${capital(route.fn)}Function`));
    }
    expect([...apiRoutes.keys()].sort()).toEqual([...routes.map(routeKey), "$default"].sort());
  });

  it("sends every other request ($default) to the api function", () => {
    expect(apiRoutes.get("$default")).toBe(arnOf("ApiFunction"));
  });

  it("points each function at a handler its file exports", async () => {
    (globalThis as Record<string, unknown>).awslambda = { streamifyResponse: (f: unknown) => f };
    try {
      for (const { name, args } of allLambdas()) {
        const [file, exported] = (args.handler as string).split(".") as [string, string];
        expect(existsSync(`${file}.ts`), `${name}: ${file}.ts`).toBe(true);
        const specifier = `../../${file}`;
        const module = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
        expect(exported in module, `${name} exports ${exported}`).toBe(true);
      }
    } finally {
      delete (globalThis as Record<string, unknown>).awslambda;
    }
  });

  it("runs cleanup hourly on EventBridge with the cron handler", () => {
    expect(cron().args.schedule).toBe("rate(1 hour)");
    expect(cron().args.function.handler).toBe("functions/cron/cleanup.handler");
  });

  it("links the secrets to every function, the read replica's optional (an empty placeholder)", () => {
    const secrets = created.filter((c) => c.kind === "Secret");
    expect(secrets.map((c) => c.name).sort()).toEqual(["DatabaseReadUrl", "DatabaseUrl", "OpenAiApiKey"]);
    expect(secrets.find((c) => c.name === "DatabaseReadUrl")?.args.placeholder).toBe("");
    expect(secrets.find((c) => c.name === "DatabaseUrl")?.args.placeholder).toBeUndefined();
    for (const { name, args } of allLambdas()) {
      const linked = (args.link as { name: string }[]).map((l) => l.name).sort();
      expect(linked, name).toEqual(["DatabaseReadUrl", "DatabaseUrl", "OpenAiApiKey"]);
    }
  });

  it("serves streamed chat from a function URL with response streaming, and outputs its URL", () => {
    const stream = fn("ChatStreamFunction").args;
    expect(stream.handler).toBe("functions/http/chat.streamHandler");
    expect(stream.streaming).toBe(true);
    expect(stream.url).toBeTruthy();
    expect(outputs.chatStream).toBe("https://chatstreamfunction.lambda-url.us-east-1.on.aws/");
    expect(outputs.api).toMatch(/^https:\/\//);
  });

  it("runs every function on arm64 with a current Node.js runtime and JSON logs kept a month", () => {
    for (const { name, args } of allLambdas()) {
      expect(args.architecture, name).toBe("arm64");
      expect(args.runtime, name).toMatch(/^nodejs(2[2-9]|[3-9]\d)\.x$/);
      expect(args.logging, name).toEqual({ retention: "1 month", format: "json" });
      expect(existsSync(args.nodejs.plugins), `${name}: ${args.nodejs.plugins}`).toBe(true);
    }
  });

  it("reserves concurrency for every function, together within a small Neon compute's connections", () => {
    const reserved = allLambdas().map(({ name, args }) => {
      expect(args.concurrency?.reserved, name).toBeGreaterThan(0);
      return args.concurrency.reserved as number;
    });
    // Neon's 0.25 CU compute allows 104 connections; a few are its own, some the CLI's and migrations'.
    expect(reserved.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(90);
  });

  it("stops every function behind API Gateway before the gateway's 30 s", () => {
    for (const name of new Set(routes.map((r) => r.fn))) {
      const { timeout } = fn(`${capital(name)}Function`).args;
      expect(seconds(timeout), name).toBeLessThan(30);
    }
  });

  it("allows browsers to send keys and user ids and to read request ids and rate limits", () => {
    const { cors } = (created.find((c) => c.kind === "ApiGatewayV2") as Recorded).args;
    expect(cors.allowHeaders).toEqual(expect.arrayContaining(["authorization", "content-type", "x-user-id"]));
    expect(cors.exposeHeaders).toEqual(expect.arrayContaining(["x-request-id", "ratelimit", "retry-after"]));
    expect(fn("ChatStreamFunction").args.url.cors).toEqual(cors);
    // Lambda refuses a function URL whose CORS lists more than 6 methods or one longer than 6 letters.
    expect(cors.allowMethods.length).toBeLessThanOrEqual(6);
    for (const method of cors.allowMethods) expect(method.length, method).toBeLessThanOrEqual(6);
  });

  it("retains and protects resources in production, removes them elsewhere", () => {
    for (const stage of ["production", "prod"]) {
      expect(config.app({ stage })).toMatchObject({ home: "aws", removal: "retain", protect: true });
    }
    expect(config.app({ stage: "dev" })).toMatchObject({ removal: "remove", protect: false });
  });
});
