//! Compresses the web UIs once, when the binary is built: every text file under `assets/`
//! gets a gzip (`.gz`) and a brotli (`.br`) twin under `$OUT_DIR/precompressed/`, kept only
//! when smaller than the file. `src/web` embeds both trees, so no process compresses at start.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Files smaller than this are sent as they are.
const MIN_BYTES: usize = 256;

/// Extensions of text files worth compressing.
const TEXT: [&str; 9] = [
    "html", "css", "js", "mjs", "json", "svg", "txt", "xml", "map",
];

fn main() {
    println!("cargo:rerun-if-changed=assets");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let root = Path::new("assets");
    let target = out.join("precompressed");
    // Stale twins of deleted files must not stay embedded.
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).expect("create precompressed dir");
    compress_tree(root, root, &target);
}

fn compress_tree(root: &Path, dir: &Path, target: &Path) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            compress_tree(root, &path, target);
            continue;
        }
        let is_text = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT.contains(&e));
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if !is_text || data.len() < MIN_BYTES {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under assets");
        let base = target.join(relative);
        std::fs::create_dir_all(base.parent().expect("a file has a parent")).expect("mkdir");
        write_if_smaller(&base, "gz", &data, gzip(&data));
        write_if_smaller(&base, "br", &data, brotli(&data));
    }
}

fn write_if_smaller(base: &Path, ext: &str, original: &[u8], packed: Vec<u8>) {
    if packed.len() < original.len() {
        let mut name = base.as_os_str().to_owned();
        name.push(format!(".{ext}"));
        std::fs::write(&name, packed).expect("write compressed twin");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        // A window no larger than the file (brotli's least is 2^10): the decoder's memory
        // follows the window.
        let window = data
            .len()
            .max(1024)
            .next_power_of_two()
            .trailing_zeros()
            .min(22);
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, window);
        enc.write_all(data).expect("brotli in memory");
    }
    out
}
