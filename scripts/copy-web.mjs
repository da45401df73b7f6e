#!/usr/bin/env node
// Copies the browser pages (src/web: HTML, CSS, ES modules, no build step) beside the compiled
// server in dist/web, where src/server/web.ts finds them; tsc copies only what it compiles.
import { cpSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const target = path.join(root, "dist/web");
rmSync(target, { recursive: true, force: true });
cpSync(path.join(root, "src/web"), target, { recursive: true });
