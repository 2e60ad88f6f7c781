//! `zerocloud image ...`, and where `up` keeps its images (its embedded
//! storage node's exec agent installs the missing ones in the background).

use std::path::PathBuf;

use proxy::config::ProxyConfig;
use sandbox::image::{self, ImageStore, ProgressDisplay};

use crate::ImageCmd;

/// The images directory: `$ZEROCLOUD_IMAGES` when set (one shared install per
/// machine or test run), else the config's `images_dir`, else `<data_dir>/images`.
pub(crate) fn dir(cfg: &ProxyConfig) -> PathBuf {
    dir_with(cfg, image::images_dir_from_env())
}

fn dir_with(cfg: &ProxyConfig, env: Option<PathBuf>) -> PathBuf {
    let d = env.unwrap_or_else(|| cfg.configured_images_dir());
    std::path::absolute(&d).unwrap_or(d)
}

/// The store at [`dir`]; says so on stderr when
/// `$ZEROCLOUD_IMAGES` overrides a directory the user named (an explicit
/// `--data-dir`, or the config's `images_dir`).
pub(crate) fn store(cfg: &ProxyConfig, data_dir_given: bool) -> ImageStore {
    let dir = dir(cfg);
    let named = cfg.configured_images_dir();
    if dir != named && (data_dir_given || cfg.images_dir.is_some()) {
        eprintln!(
            "zerocloud: images in {} (${}), not {}",
            dir.display(),
            image::IMAGES_ENV,
            named.display()
        );
    }
    ImageStore::at(dir)
}

pub(crate) fn command(cmd: ImageCmd) -> anyhow::Result<()> {
    match cmd {
        ImageCmd::Install { name, place, wheel } => {
            let store = place.store()?;
            let mut display = ProgressDisplay::stderr();
            let result =
                store.install_and_prepare(&name, wheel.as_deref(), &mut |p| display.show(&p));
            display.finish();
            let installed = result?;
            println!(
                "{} {}: {}",
                installed.name(),
                installed.version(),
                installed.dir.display()
            );
            Ok(())
        }
        ImageCmd::List { place } => {
            let store = place.store()?;
            let listed = store.list()?;
            if listed.is_empty() {
                println!("no images installed in {}", store.dir().display());
            } else {
                let mut rows =
                    vec![["NAME", "VERSION", "SIZE", "STEPS", "ALIASES", "DIR"].map(String::from)];
                for l in &listed {
                    let steps: Vec<&str> = l.steps.keys().map(String::as_str).collect();
                    rows.push([
                        l.image.name().to_string(),
                        l.image.version().to_string(),
                        image::human_bytes(l.size),
                        if steps.is_empty() {
                            "-".to_string()
                        } else {
                            steps.join(",")
                        },
                        l.image.record.aliases.join(","),
                        l.image.dir.display().to_string(),
                    ]);
                }
                print!("{}", table(&rows));
            }
            for spec in image::known_images() {
                let installed = listed
                    .iter()
                    .any(|l| l.image.name() == spec.name && l.image.version() == spec.version);
                if !installed {
                    println!(
                        "not installed: {} {} (zerocloud image install {})",
                        spec.name, spec.version, spec.name
                    );
                }
            }
            Ok(())
        }
    }
}

/// Rows as columns padded to their widest cell (the size column right-aligned),
/// two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else if i == 2 {
                line.push_str(&format!("{cell:>w$}  ", w = width[i]));
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_columns_line_up() {
        let rows = [
            ["NAME", "SIZE", "X"].map(String::from),
            ["python-longer", "1.2 GiB", "/a"].map(String::from),
        ];
        // Column 2 (SIZE) is right-aligned only when it is the third column;
        // here it is the second, so every column is left-aligned.
        let t = super::table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find("SIZE"), lines[1].find("1.2 GiB"));
        assert_eq!(lines[0].find('X'), lines[1].find("/a"));
    }

    use super::*;

    #[test]
    fn images_dir_env_then_key_then_data_dir() {
        let mut cfg = ProxyConfig {
            data_dir: "/d".into(),
            ..ProxyConfig::default()
        };
        assert_eq!(dir_with(&cfg, None), PathBuf::from("/d/images"));
        cfg.images_dir = Some("/k".into());
        assert_eq!(dir_with(&cfg, None), PathBuf::from("/k"));
        assert_eq!(dir_with(&cfg, Some("/e".into())), PathBuf::from("/e"));
        // Relative names are resolved once, against the current directory.
        cfg.images_dir = Some("rel".into());
        assert!(dir_with(&cfg, None).is_absolute());
    }
}
