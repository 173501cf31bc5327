// Writes a .br and a .gz twin next to every text file of dist/ (the server sends the twin when
// the browser accepts it: see apiserver/src/http/panel.rs). Twins that would not be smaller are
// not written.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const root = new URL('../dist/', import.meta.url).pathname;
const text = /\.(js|mjs|css|html|svg|json|txt|map|ttf)$/;
let files = 0;
let raw = 0;
let br = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (text.test(name)) {
      const data = readFileSync(path);
      const b = brotliCompressSync(data, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
      });
      const g = gzipSync(data, { level: 9 });
      if (b.length < data.length) writeFileSync(`${path}.br`, b);
      if (g.length < data.length) writeFileSync(`${path}.gz`, g);
      files += 1;
      raw += data.length;
      br += Math.min(b.length, data.length);
    }
  }
}
walk(root);
console.log(`precompressed ${files} files: ${(raw / 1024).toFixed(0)} KiB → ${(br / 1024).toFixed(0)} KiB with brotli`);
