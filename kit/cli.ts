/** The `engram` command as a person runs it, for tests: one command to completion, or `engram start` as a server. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const BIN = join(import.meta.dirname, "../bin/engram.js");

/** Runs `engram <args>` to its end: its exit code and what it printed (a failure is an answer, not a throw). */
export async function engram(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeout = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run("node", [BIN, ...args], { env, timeout });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything it printed so far, stdout and stderr. */
  output: () => string;
  /** Stops it (SIGTERM) and waits for it to exit. */
  stop: () => Promise<void>;
}

/** Starts `engram start` (give `PORT: "0"` for a free port) and resolves once it says where it listens. */
export async function startServer(env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  const child = spawn("node", [BIN, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const found = /listening on (http:\/\/\S+)/.exec(output);
      if (found?.[1]) {
        clearInterval(timer);
        resolve(found[1]);
      }
    }, 100);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`engram start exited ${code}: ${output}`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    await new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill("SIGTERM");
    });
  };
  return { child, url, output: () => output, stop };
}
