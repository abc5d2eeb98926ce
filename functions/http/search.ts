import { http } from "./chain";

export const handler = http({});
