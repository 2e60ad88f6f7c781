//! Jinja2 templates: the zapp.yaml `zpm new` writes, and the `.tmpl` UI
//! files `zpm deploy` renders (context: `auth_opts`, a JSON text, and
//! `zapp`, the parsed zapp.yaml).

use anyhow::{anyhow, Result};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

/// The zapp.yaml template of `zpm new` (`name`, `with_ui`).
pub const ZAPP_YAML_TEMPLATE: &str = include_str!("templates/zapp.yaml.tmpl");
/// The UI files of `zpm new --with-ui`, by file name.
pub const UI_FILES: [(&str, &str); 3] = [
    ("index.html.tmpl", include_str!("templates/index.html.tmpl")),
    ("style.css", include_str!("templates/style.css")),
    ("zerocloud.js", include_str!("templates/zerocloud.js")),
];

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // `zapp.help.args` on a zapp without `help` is empty, not an error.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_keep_trailing_newline(true);
    env
}

fn render(name: &str, source: &str, ctx: Value) -> Result<String> {
    let env = environment();
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| anyhow!("{name}: {}", describe(&e)))?;
    tmpl.render(ctx)
        .map_err(|e| anyhow!("{name}: {}", describe(&e)))
}

/// A template error with its line.
fn describe(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

/// zapp.yaml for a new project named `name`.
pub fn zapp_yaml(name: &str, with_ui: bool) -> Result<String> {
    render(
        "zapp.yaml",
        ZAPP_YAML_TEMPLATE,
        minijinja::context! { name => name, with_ui => with_ui },
    )
}

/// JSON text safe inside an HTML `<script>`: `<`, `>` and `&` as `\u00XX`.
pub fn script_json(v: &Json) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Renders a `.tmpl` UI file of a deploy.
pub fn render_ui(
    name: &str,
    source: &str,
    auth_opts: &Json,
    zapp: &serde_yaml::Value,
) -> Result<String> {
    let ctx = minijinja::context! {
        auth_opts => script_json(auth_opts),
        zapp => Value::from_serialize(zapp),
    };
    render(name, source, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_new_zapp_yaml() {
        let text = zapp_yaml("my \"app\"", false).unwrap();
        let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(y["meta"]["name"].as_str(), Some("my \"app\""));
        assert_eq!(
            y["execution"]["groups"][0]["path"].as_str(),
            Some("file://python2.7:python")
        );
        let devices: Vec<&str> = y["execution"]["groups"][0]["devices"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(devices, ["python2.7", "stdout"]);
        assert_eq!(y["bundling"].as_sequence().map(Vec::len), Some(0));
        assert_eq!(y["help"]["args"][0][0].as_str(), Some(""));
        assert!(y.get("ui").is_none());
        assert!(
            text.starts_with('#') && text.ends_with("bundling: []\n"),
            "{text}"
        );

        let text = zapp_yaml("x", true).unwrap();
        let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let ui: Vec<&str> = y["ui"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(ui, ["index.html.tmpl", "style.css", "zerocloud.js"]);
        assert!(text.ends_with("zerocloud.js\n"));
    }

    #[test]
    fn the_ui_page_renders() {
        let zapp: serde_yaml::Value = serde_yaml::from_str(
            "meta: {name: 'Greeter <b>'}\nhelp:\n  description: Says hello\n  args:\n  - ['--name', 'Who to greet']\n  - ['', 'More words']\n",
        )
        .unwrap();
        let opts = json!({"version": "1.0", "authUrl": "http://h/auth/v1.0", "username": "u", "password": "p</script>"});
        let page = render_ui("index.html.tmpl", UI_FILES[0].1, &opts, &zapp).unwrap();
        assert!(!page.contains("{{") && !page.contains("{%"), "{page}");
        assert!(page.contains("<h1>Greeter &lt;b&gt;</h1>"), "{page}");
        assert!(page.contains("Says hello"));
        assert!(
            page.contains(r#"data-option="--name""#)
                && page.contains(r#"placeholder="Who to greet""#)
        );
        assert!(page.contains(r#"placeholder="More words""#));
        assert_eq!(page.matches("class=\"zapp-arg\"").count(), 2);
        assert!(
            page.contains(r#""password":"p\u003c/script\u003e""#),
            "{page}"
        );
        assert!(!page.contains("p</script>"));
        // The rendered options are the JSON given.
        let start = page.find("attach(").unwrap();
        let json_text = page[start..]
            .split_once(", ")
            .unwrap()
            .1
            .split_once(");")
            .unwrap()
            .0;
        assert_eq!(serde_json::from_str::<Json>(json_text).unwrap(), opts);
    }

    #[test]
    fn a_zapp_without_help_renders_and_errors_name_the_line() {
        let zapp: serde_yaml::Value = serde_yaml::from_str("meta: {name: x}").unwrap();
        let page = render_ui(
            "index.html.tmpl",
            UI_FILES[0].1,
            &json!({"version": "0.0"}),
            &zapp,
        )
        .unwrap();
        assert_eq!(page.matches("class=\"zapp-arg\"").count(), 0);
        let e = render_ui("bad.tmpl", "a\n{{ oops(", &json!({}), &zapp)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad.tmpl: line 2: "), "{e}");
    }
}
