// Builds dist/ from src/ with the esbuild pinned in package-lock.json:
//   node build.mjs           write dist/{ezcomet,cometify}{,.min}.js
//   node build.mjs --check   rebuild in memory, fail unless dist/ matches byte for byte
// Either way it prints each file's size and gzipped size.
import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes('--check');
let bad = 0;

for (const name of ['ezcomet', 'cometify']) {
  for (const minify of [false, true]) {
    const out = `${name}${minify ? '.min' : ''}.js`;
    const r = await esbuild.build({
      entryPoints: [join(here, 'src', `${name}.js`)],
      bundle: true,
      format: 'iife',
      target: 'es2017',
      minify,
      legalComments: 'none',
      charset: 'utf8',
      banner: { js: `/* ${name}.js for Halley, built from jsclient/src by esbuild ${esbuild.version}. */` },
      write: false,
      absWorkingDir: here,
    });
    const body = Buffer.from(r.outputFiles[0].contents);
    const path = join(here, 'dist', out);
    if (check) {
      let old = null;
      try {
        old = readFileSync(path);
      } catch {}
      if (!old || !old.equals(body)) {
        console.log(`dist/${out}: differs from a rebuild of src/ (run: make js)`);
        bad++;
        continue;
      }
    } else {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, body);
    }
    console.log(`dist/${out}: ${body.length} bytes, ${gzipSync(body, { level: 9 }).length} gzipped`);
  }
}
process.exit(bad ? 1 : 0);
