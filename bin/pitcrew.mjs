#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader, so `npm install && npm start`
// needs no build step and the Docker images run exactly the code in the repository.
import { register } from "tsx/esm/api";

register();
await import("../src/main/cli.ts");
