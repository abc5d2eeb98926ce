/** Hourly (EventBridge schedule): removes what has expired, within the invocation's time. */
import type { Context } from "aws-lambda";
import * as Cleanup from "../../core/cleanup";
import { config } from "../../core/config";
import { db } from "../../core/db";

// Leaves time to log and return after the last batch.
const MARGIN_MS = 10_000;

export async function handler(_event: unknown, context: Context): Promise<Cleanup.Report> {
  return Cleanup.run(await db(), {
    retentionDays: config().softDeleteRetentionDays,
    budgetMs: Math.max(1_000, context.getRemainingTimeInMillis() - MARGIN_MS),
  });
}
