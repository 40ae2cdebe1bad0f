//! Fuzzes the request body decoders (JSON, YAML, Kubernetes protobuf) and the typed pipeline
//! behind them: any input must yield an object or a `Status` error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skiff_apiserver::negotiate::{BodyFormat, decode_body};
use skiff_apiserver::typed::{FieldValidation, Operation, ops_for};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let format = match selector % 3 {
        0 => BodyFormat::Json,
        1 => BodyFormat::Yaml,
        _ => BodyFormat::Protobuf,
    };
    if let Ok(obj) = decode_body(body, format) {
        for (group, kind) in [("", "Pod"), ("", "Service"), ("apps", "Deployment"), ("batch", "CronJob")] {
            if let Some(ops) = ops_for(group, kind) {
                let _ = ops.admit(obj.clone(), Operation::Create, FieldValidation::Strict, &mut Vec::new());
            }
        }
    }
});
