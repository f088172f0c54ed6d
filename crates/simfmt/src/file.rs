//! Reading and writing `.sim` files on disk.

use crate::error::{Result, SimError};
use crate::{read_sim, write_sim, SimMetadata};
use ipukit_ir::Graph;
use std::io::Write;
use std::path::Path;

/// Writes `graph` to `path` atomically.
///
/// The bytes go to a temporary file in the same directory, which is flushed to disk and then
/// renamed over `path`: readers see the old file or the complete new one, and any error
/// (including one from [`write_sim`]) leaves no file behind. A new file gets mode 0644 on Unix;
/// a replaced file keeps its mode.
pub fn write_sim_file(path: impl AsRef<Path>, graph: &Graph, meta: &SimMetadata) -> Result<()> {
    let path = path.as_ref();
    let bytes = write_sim(graph, meta)?;
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ipukit-")
        .suffix(".sim.tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a `.sim` file; errors name the file.
pub fn read_sim_file(path: impl AsRef<Path>) -> Result<(Graph, SimMetadata)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_sim(&bytes).map_err(|e| SimError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}
