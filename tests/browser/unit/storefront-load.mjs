// Imports a storefront module by its stem (core, api) whatever its content hash; as
// load.mjs, with a data: URL fallback for Node versions that do not detect ES modules.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

export const dir = new URL('../../../assets/storefront/assets/', import.meta.url);

export function file(stem, ext = 'js') {
  const found = readdirSync(dir).filter((f) => new RegExp(`^${stem}\\.[0-9a-f]{10}\\.${ext}$`).test(f));
  if (found.length !== 1) throw new Error(`expected one ${stem}.<hash>.${ext} in ${dir.pathname}, found ${found.join(', ') || 'none'}`);
  return found[0];
}

export async function load(stem) {
  const url = new URL(file(stem), dir);
  try {
    return await import(url);
  } catch (first) {
    const src = await readFile(url, 'utf8');
    return import('data:text/javascript;base64,' + Buffer.from(src).toString('base64')).catch(() => {
      throw first;
    });
  }
}
