//! When the agent asks for a new client certificate: at a jittered point between 70 % and 90 %
//! of the current certificate's lifetime (from `notBefore` to `notAfter`), as the kubelet with
//! `rotateCertificates` does, so many nodes issued at once do not all renew at the same second.
//! Pure arithmetic; the clock and the random fraction are the caller's.

/// The earliest fraction of the lifetime after which the certificate is renewed.
pub const MIN_FRACTION: f64 = 0.7;
/// The latest fraction of the lifetime after which the certificate is renewed.
pub const MAX_FRACTION: f64 = 0.9;

/// A fraction in [[`MIN_FRACTION`], [`MAX_FRACTION`]] from `uniform`, a value in [0, 1].
pub fn jittered_fraction(uniform: f64) -> f64 {
    MIN_FRACTION + (MAX_FRACTION - MIN_FRACTION) * uniform.clamp(0.0, 1.0)
}

/// A random fraction in [[`MIN_FRACTION`], [`MAX_FRACTION`]].
pub fn random_fraction() -> f64 {
    jittered_fraction(rand::random::<f64>())
}

/// The time (seconds since the epoch) to renew a certificate valid from `not_before` to
/// `not_after`, once `fraction` of its lifetime has passed.
pub fn rotation_deadline(not_before: i64, not_after: i64, fraction: f64) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    // Lifetimes are far below 2^53 seconds, so the float round trip is exact enough.
    not_before.saturating_add((lifetime as f64 * fraction.clamp(0.0, 1.0)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_falls_between_70_and_90_percent_of_the_lifetime() {
        let (nb, na) = (1_000, 2_000);
        assert_eq!(rotation_deadline(nb, na, jittered_fraction(0.0)), 1_700);
        assert_eq!(rotation_deadline(nb, na, jittered_fraction(1.0)), 1_900);
        assert_eq!(rotation_deadline(nb, na, jittered_fraction(0.5)), 1_800);
        for _ in 0..100 {
            let d = rotation_deadline(nb, na, random_fraction());
            assert!((1_700..=1_900).contains(&d), "{d}");
        }
    }

    #[test]
    fn out_of_range_inputs_are_clamped() {
        assert_eq!(jittered_fraction(-3.0), MIN_FRACTION);
        assert_eq!(jittered_fraction(7.0), MAX_FRACTION);
        // A certificate whose end precedes its start is due at once.
        assert_eq!(rotation_deadline(2_000, 1_000, 0.8), 2_000);
    }

    #[test]
    fn a_one_year_certificate_is_renewed_after_about_nine_months() {
        let year = 365 * 24 * 3600;
        let d = rotation_deadline(0, year, 0.75);
        assert_eq!(d, year * 3 / 4);
    }
}
