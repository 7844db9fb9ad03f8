// Imports a dashboard module from assets/dashboard/js. Those are ES modules in a directory
// without package.json: Node ≥ 20.19 / 22.7 detects that; where it does not, the source is
// imported as a data: URL (the pure modules import nothing, so that works).
import { readFile } from 'node:fs/promises';

const dir = new URL('../../../assets/dashboard/js/', import.meta.url);

export async function load(name) {
  const url = new URL(name, dir);
  try {
    return await import(url);
  } catch (first) {
    const src = await readFile(url, 'utf8').catch(() => {
      throw first;
    });
    return import('data:text/javascript;base64,' + Buffer.from(src).toString('base64')).catch(() => {
      throw first;
    });
  }
}
