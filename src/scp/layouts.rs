//! Dashboard layouts saved per user on the server, with the reference's export format.
//!
//! The reference kept layouts in the browser's localStorage only (and lost them on an
//! upgrade); here each user's layouts are one JSON file under `{SCP_DATA_DIR}/layouts/`, in
//! the reference's shape so its exports import unchanged:
//!
//! - stored: `{"savedLayouts": {name: {layout: [item…], widgetCounter, dashboardColNum,
//!   created, modified, description}}, "defaultLayoutName": name}`;
//! - item: `{x, y, w, h, i, type, userLabel?, linkColor?, colWidths?, settings?}`;
//! - export: `{"version": 1, "exported": ms, "layouts": {…}, "defaultLayout": name}`; an
//!   import merges into what is stored (same name: the imported one wins).
//!
//! Everything a browser sends is validated here: a bad body is a 400 with the reason.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest layouts document accepted (all of one user's layouts).
pub const MAX_BYTES: usize = 256 * 1024;
const MAX_LAYOUTS: usize = 100;
const MAX_ITEMS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{0}")]
    Invalid(String),
    #[error("layout storage: {0}")]
    Io(#[from] std::io::Error),
}

/// One user's layouts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Layouts {
    #[serde(default)]
    pub saved_layouts: Map<String, Value>,
    #[serde(default)]
    pub default_layout_name: Option<String>,
}

/// The reference's export document.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    pub version: u32,
    #[serde(default)]
    pub exported: i64,
    pub layouts: Map<String, Value>,
    #[serde(default)]
    pub default_layout: Option<String>,
}

fn invalid(msg: impl Into<String>) -> LayoutError {
    LayoutError::Invalid(msg.into())
}

fn check_item(layout: &str, n: usize, item: &Value) -> Result<(), LayoutError> {
    let obj = item
        .as_object()
        .ok_or_else(|| invalid(format!("layout `{layout}` item {n}: not an object")))?;
    for field in ["x", "y", "w", "h"] {
        let ok = obj
            .get(field)
            .and_then(Value::as_u64)
            .is_some_and(|v| v <= 10_000);
        if !ok {
            return Err(invalid(format!(
                "layout `{layout}` item {n}: `{field}` must be a whole number 0-10000"
            )));
        }
    }
    for field in ["i", "type"] {
        let ok = obj
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty() && s.len() <= 100);
        if !ok {
            return Err(invalid(format!(
                "layout `{layout}` item {n}: `{field}` must be a non-empty string"
            )));
        }
    }
    Ok(())
}

fn check_layouts(saved: &Map<String, Value>) -> Result<(), LayoutError> {
    if saved.len() > MAX_LAYOUTS {
        return Err(invalid(format!("at most {MAX_LAYOUTS} layouts")));
    }
    for (name, entry) in saved {
        if name.is_empty() || name.len() > 100 {
            return Err(invalid("a layout name must be 1-100 characters"));
        }
        let items = entry
            .get("layout")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(format!("layout `{name}`: `layout` must be an array")))?;
        if items.len() > MAX_ITEMS {
            return Err(invalid(format!(
                "layout `{name}`: at most {MAX_ITEMS} widgets"
            )));
        }
        for (n, item) in items.iter().enumerate() {
            check_item(name, n, item)?;
        }
    }
    Ok(())
}

impl Layouts {
    /// Parses and validates what a browser sent.
    pub fn parse(body: &[u8]) -> Result<Layouts, LayoutError> {
        if body.len() > MAX_BYTES {
            return Err(invalid(format!("layouts larger than {MAX_BYTES} bytes")));
        }
        let l: Layouts = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("not a layouts document: {e}")))?;
        check_layouts(&l.saved_layouts)?;
        if let Some(d) = &l.default_layout_name {
            if !l.saved_layouts.contains_key(d) {
                return Err(invalid(format!(
                    "default layout `{d}` is not among the layouts"
                )));
            }
        }
        Ok(l)
    }

    pub fn export(&self, now_ms: i64) -> Export {
        Export {
            version: 1,
            exported: now_ms,
            layouts: self.saved_layouts.clone(),
            default_layout: self.default_layout_name.clone(),
        }
    }

    /// Merges an export into these layouts (the reference's import semantics).
    pub fn import(&mut self, body: &[u8]) -> Result<usize, LayoutError> {
        if body.len() > MAX_BYTES {
            return Err(invalid(format!("import larger than {MAX_BYTES} bytes")));
        }
        let e: Export = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("not a layout export: {e}")))?;
        if e.version != 1 {
            return Err(invalid(format!(
                "export version {} (expected 1)",
                e.version
            )));
        }
        check_layouts(&e.layouts)?;
        let n = e.layouts.len();
        let mut merged = self.saved_layouts.clone();
        merged.extend(e.layouts);
        check_layouts(&merged)?;
        self.saved_layouts = merged;
        if let Some(d) = e
            .default_layout
            .filter(|d| self.saved_layouts.contains_key(d))
        {
            self.default_layout_name = Some(d);
        }
        Ok(n)
    }
}

/// Where each user's layouts file lives.
pub struct LayoutStore {
    dir: PathBuf,
}

impl LayoutStore {
    pub fn new(dir: PathBuf) -> Self {
        LayoutStore { dir }
    }

    /// Usernames are validated at creation (`users::valid_username`), so they are safe file
    /// names; checked again here because this builds a path.
    fn path(&self, user: &str) -> Result<PathBuf, LayoutError> {
        if !super::users::valid_username(user) {
            return Err(invalid("bad username"));
        }
        Ok(self.dir.join(format!("{user}.json")))
    }

    pub fn load(&self, user: &str) -> Result<Layouts, LayoutError> {
        match std::fs::read(self.path(user)?) {
            Ok(b) => Layouts::parse(&b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layouts::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn save(&self, user: &str, layouts: &Layouts) -> Result<(), LayoutError> {
        let path = self.path(user)?;
        std::fs::create_dir_all(&self.dir)?;
        let body = serde_json::to_vec(layouts).map_err(|e| invalid(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, body)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "savedLayouts": {"main": {"layout": [
                {"x": 0, "y": 0, "w": 6, "h": 19, "i": "widget-1", "type": "top-gainers", "linkColor": "red"}
            ], "widgetCounter": 1, "dashboardColNum": 12}},
            "defaultLayoutName": "main"
        })
    }

    #[test]
    fn validates_with_reasons() {
        let ok = Layouts::parse(doc().to_string().as_bytes()).unwrap();
        assert_eq!(ok.default_layout_name.as_deref(), Some("main"));
        let mut bad = doc();
        bad["savedLayouts"]["main"]["layout"][0]["w"] = json!(-1);
        let err = Layouts::parse(bad.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("`w` must be a whole number"),
            "{err}"
        );
        let mut bad = doc();
        bad["defaultLayoutName"] = json!("nope");
        assert!(Layouts::parse(bad.to_string().as_bytes()).is_err());
        assert!(Layouts::parse(b"[1,2]").is_err());
        assert!(Layouts::parse(b"{not json").is_err());
    }

    #[test]
    fn export_then_import_merges() {
        let mine = Layouts::parse(doc().to_string().as_bytes()).unwrap();
        let exported = serde_json::to_vec(&mine.export(1)).unwrap();
        let v: Value = serde_json::from_slice(&exported).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["defaultLayout"], "main");
        let mut other = Layouts::default();
        other
            .saved_layouts
            .insert("mine".into(), json!({"layout": []}));
        assert_eq!(other.import(&exported).unwrap(), 1);
        assert_eq!(other.saved_layouts.len(), 2);
        assert_eq!(other.default_layout_name.as_deref(), Some("main"));
        assert!(other.import(br#"{"version":2,"layouts":{}}"#).is_err());
    }
}
