//! `zpm new`: a project directory with a commented zapp.yaml and, with
//! `--with-ui`, a small web UI.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::ui;

/// The template names `--template` accepts.
pub const TEMPLATES: [&str; 1] = ["python"];

/// Writes a new project into `dir` (created if absent; must be empty if
/// present) and returns the files written. `{{ name }}` in the template
/// is the directory's name.
pub fn create_project(dir: &Path, with_ui: bool) -> Result<Vec<PathBuf>> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("'{}' is not a directory", dir.display());
        }
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("cannot read '{}'", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "'{}' is not empty: zpm new needs an empty or new directory",
                dir.display()
            );
        }
    } else {
        fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    }
    let abs = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve '{}'", dir.display()))?;
    let name = abs
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("'{}' has no usable name for the zapp", abs.display()))?;
    let mut files = vec![(
        crate::bundle::ZAPP_YAML.to_string(),
        ui::zapp_yaml(name, with_ui)?,
    )];
    if with_ui {
        files.extend(
            ui::UI_FILES
                .iter()
                .map(|(n, text)| (n.to_string(), text.to_string())),
        );
    }
    let mut written = Vec::new();
    for (file, text) in files {
        let path = dir.join(file);
        fs::write(&path, text).with_context(|| format!("cannot write '{}'", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_into_an_absent_or_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wordcount");
        let files = create_project(&dir, false).unwrap();
        assert_eq!(files, [dir.join("zapp.yaml")]);
        let text = fs::read_to_string(dir.join("zapp.yaml")).unwrap();
        assert!(text.contains("name: \"wordcount\""), "{text}");

        let ui_dir = tmp.path().join("empty");
        fs::create_dir(&ui_dir).unwrap();
        let files = create_project(&ui_dir, true).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["zapp.yaml", "index.html.tmpl", "style.css", "zerocloud.js"]
        );
    }

    #[test]
    fn a_non_empty_directory_or_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), "").unwrap();
        let e = create_project(tmp.path(), false).unwrap_err().to_string();
        assert!(e.contains("is not empty"), "{e}");
        let e = create_project(&tmp.path().join("x"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a directory"), "{e}");
        assert!(!tmp.path().join("zapp.yaml").exists());
    }
}
