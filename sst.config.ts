/// <reference path="./.sst/platform/config.d.ts" />
/**
 * The whole cloud picture: one HTTP API whose routes come from core/api/routes.ts, one Lambda
 * per function group sharing core/, the cleanup cron, and the two secrets linked to all.
 */
export default $config({
  app(input) {
    return {
      name: "engram",
      home: "aws",
      removal: input?.stage === "production" || input?.stage === "prod" ? "retain" : "remove",
      protect: input?.stage === "production" || input?.stage === "prod",
    };
  },
  async run() {
    const { routes, routeKey, functionNames } = await import("./core/api/routes");
    const { functionSettings } = await import("./infra/functions");

    const databaseUrl = new sst.Secret("DatabaseUrl");
    const openAiApiKey = new sst.Secret("OpenAiApiKey");
    const link = [databaseUrl, openAiApiKey];

    const api = new sst.aws.ApiGatewayV2("Api", {
      cors: { allowOrigins: ["*"], allowHeaders: ["authorization", "content-type", "x-user-id"], exposeHeaders: ["x-request-id", "ratelimit", "ratelimit-policy", "retry-after"] },
    });

    const functions = Object.fromEntries(
      functionNames.map((name) => [
        name,
        new sst.aws.Function(`${name[0]?.toUpperCase()}${name.slice(1)}Function`, {
          handler: `functions/http/${name}.handler`,
          link,
          ...functionSettings[name],
        }),
      ]),
    );

    for (const route of routes) api.route(routeKey(route), functions[route.fn]!.arn);
    // Unknown routes reach the api function, which answers 404/405 in the product's error shape.
    api.route("$default", functions.api!.arn);

    new sst.aws.CronV2("Cleanup", {
      schedule: "rate(1 hour)",
      function: { handler: "functions/cron/cleanup.handler", link, ...functionSettings.cleanup },
    });

    return { api: api.url };
  },
});
