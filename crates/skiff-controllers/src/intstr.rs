//! Int-or-percent values resolved against a total (upstream `intstr.GetScaledValueFromIntOrPercent`),
//! for every controller that reads `maxSurge`, `maxUnavailable` or `minAvailable`.
//!
//! What does not live here: validation of the values (`skiff-api`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `value` as is, or its percentage of `total`, rounded up or down; an error worded as
/// upstream's for a string that is not a whole percentage.
pub fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err("invalid value for IntOrString: invalid type: string is not a percentage".to_string());
            };
            let pct: i64 =
                number.parse().map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let product = pct * i64::from(total);
            let v = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            i32::try_from(v).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_asked() {
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3, true), Ok(2));
        assert_eq!(scaled(&IntOrString::String("50%".into()), 3, false), Ok(1));
        assert_eq!(scaled(&IntOrString::String("34%".into()), 10, true), Ok(4));
        assert_eq!(scaled(&IntOrString::String("0%".into()), 10, true), Ok(0));
        assert_eq!(scaled(&IntOrString::String("100%".into()), 7, true), Ok(7));
        assert_eq!(scaled(&IntOrString::Int(3), 7, true), Ok(3));
        assert_eq!(
            scaled(&IntOrString::String("half".into()), 7, true),
            Err("invalid value for IntOrString: invalid type: string is not a percentage".to_string())
        );
        assert!(scaled(&IntOrString::String("x%".into()), 7, true).is_err());
    }
}
