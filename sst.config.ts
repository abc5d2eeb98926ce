/// <reference path="./.sst/platform/config.d.ts" />
/**
 * The whole cloud picture: one HTTP API whose routes come from the route contract (core/api/routes.ts),
 * one Lambda per function group sharing core/, the chat function's streaming URL, the hourly cleanup,
 * and the secrets linked to every function. The functions, their settings and reasons: infra/functions.ts.
 */
export default $config({
  app(input) {
    const production = ["production", "prod"].includes(input?.stage ?? "");
    return { name: "engram", home: "aws", removal: production ? "retain" : "remove", protect: production };
  },
  async run() {
    const { routes } = await import("./core/api/routes");
    const { httpFunctions, lambdas, handlerOf, cors } = await import("./infra/functions");

    // DatabaseReadUrl is optional (a read replica, docs/replicas.md): its empty placeholder means none.
    const link = [new sst.Secret("DatabaseUrl"), new sst.Secret("OpenAiApiKey"), new sst.Secret("DatabaseReadUrl", "")];
    const capital = (name: string) => `${name[0]?.toUpperCase()}${name.slice(1)}`;

    const functions = Object.fromEntries(
      Object.entries(httpFunctions).map(([name, lambda]) => [
        name,
        new sst.aws.Function(`${capital(name)}Function`, { handler: handlerOf(lambda), link, ...lambda.settings }),
      ]),
    );

    const api = new sst.aws.ApiGatewayV2("Api", { cors, accessLog: { retention: "1 month" } });
    for (const route of routes) api.route(route.key, functions[route.fn]!.arn);
    // Anything else reaches the api function, which answers 404/405 in the product's error shape.
    api.route("$default", functions.api!.arn);

    // API Gateway's HTTP API cannot stream: `stream: true` chats are served live from this URL
    // (same file, the `awslambda.streamifyResponse` export; the key is checked by the handler).
    const chatStream = new sst.aws.Function("ChatStreamFunction", {
      handler: handlerOf(lambdas.chatStream),
      link,
      url: { cors },
      streaming: true,
      ...lambdas.chatStream.settings,
    });

    new sst.aws.CronV2("Cleanup", {
      schedule: "rate(1 hour)",
      function: { handler: handlerOf(lambdas.cleanup), link, ...lambdas.cleanup.settings },
    });

    return { api: api.url, chatStream: chatStream.url };
  },
});
