//! Fuzzes the label and field selector parsers: parsing must not panic, and a selector that
//! parses must evaluate on any labels without panicking.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use skiff_api::selector::{FieldSelectorExpr, LabelSelectorExpr};

fuzz_target!(|data: &str| {
    let labels = BTreeMap::from([("app".to_string(), "web".to_string()), ("tier".to_string(), "x".to_string())]);
    if let Ok(sel) = LabelSelectorExpr::parse(data) {
        let _ = sel.matches(&labels);
    }
    if let Ok(sel) = FieldSelectorExpr::parse(data) {
        let _ = sel.matches(|f| (f == "metadata.name").then(|| "web".to_string()));
    }
});
