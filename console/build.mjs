// Builds the console into dist/: src/main.ts bundled and minified into app.js, plus index.html
// and style.css copied as they are. The server embeds dist/, so dist/ is committed; the same
// sources always give byte-identical files, which `node build.mjs --check` verifies (CI).
//
//   node build.mjs           build into dist/
//   node build.mjs --check   build into a temporary directory; exit 1 unless dist/ is identical

import { mkdtemp, mkdir, readFile, readdir, rm, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const consoleDir = dirname(fileURLToPath(import.meta.url));
const nodeModules = join(consoleDir, "node_modules") + sep;
const STATIC_FILES = ["index.html", "style.css"];

/**
 * The generated code lives in clients/typescript/src/gen and would resolve @bufbuild/protobuf
 * from clients/typescript/node_modules (a second copy, or none at all). Resolving these packages
 * as if imported from console/ puts exactly one copy, console/node_modules', in the bundle.
 */
const SHARED_PACKAGES = /^@(bufbuild\/protobuf|connectrpc\/connect(-web)?)(\/.*)?$/;
const MARK = "console-resolved";

/** @type {esbuild.Plugin} */
const oneCopyOfRuntime = {
  name: "one-copy-of-runtime",
  setup(build) {
    build.onResolve({ filter: SHARED_PACKAGES }, async (args) => {
      if (args.pluginData === MARK) return undefined; // our own re-resolution below
      const result = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: consoleDir,
        importer: args.importer,
        pluginData: MARK,
      });
      if (result.errors.length > 0) return { errors: result.errors };
      if (!result.path.startsWith(nodeModules)) {
        return { errors: [{ text: `${args.path} resolved outside console/node_modules: ${result.path}` }] };
      }
      return { path: result.path, sideEffects: result.sideEffects };
    });
  },
};

async function build(outDir) {
  await mkdir(outDir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: consoleDir,
    entryPoints: ["src/main.ts"],
    outfile: join(outDir, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    sourcemap: false,
    legalComments: "none",
    charset: "utf8",
    logLevel: "warning",
    plugins: [oneCopyOfRuntime],
    metafile: true,
  });
  for (const name of STATIC_FILES) await copyFile(join(consoleDir, name), join(outDir, name));
  return result.metafile;
}

/** Every file under dir, as paths relative to it with forward slashes. */
async function listFiles(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)).split(sep).join("/"))
    .sort();
}

async function check() {
  const distDir = join(consoleDir, "dist");
  const tmp = await mkdtemp(join(tmpdir(), "servicedesk-console-"));
  try {
    await build(tmp);
    const fresh = await listFiles(tmp);
    const committed = await listFiles(distDir);
    const problems = [];
    for (const name of fresh) {
      if (!committed.includes(name)) {
        problems.push(`dist/${name} is missing`);
        continue;
      }
      const [a, b] = await Promise.all([readFile(join(tmp, name)), readFile(join(distDir, name))]);
      if (!a.equals(b)) problems.push(`dist/${name} differs from a fresh build`);
    }
    for (const name of committed) {
      if (!fresh.includes(name)) problems.push(`dist/${name} is not produced by the build`);
    }
    if (problems.length > 0) {
      for (const p of problems) console.error(p);
      console.error("dist/ is stale: run `npm run build` in console/ and commit dist/");
      process.exit(1);
    }
    console.log(`dist/ is up to date (${fresh.join(", ")})`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv.includes("--check")) {
  await check();
} else {
  const distDir = join(consoleDir, "dist");
  // Start clean so a file the build no longer makes cannot linger in the commit.
  await rm(distDir, { recursive: true, force: true });
  const metafile = await build(distDir);
  for (const [file, out] of Object.entries(metafile.outputs)) {
    console.log(`${relative(consoleDir, join(consoleDir, file))}: ${out.bytes} bytes`);
  }
  for (const name of STATIC_FILES) console.log(`dist/${name}: copied`);
}
