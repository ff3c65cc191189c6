//! Inferring an IANA time zone from where a scan happened.
//!
//! USPS, UPS (Track Alert), DHL Express and the FedEx label event can give
//! a local wall time with no offset. The place is then the only clue: a
//! state for US scans, a province for Canada and Australia, the country
//! elsewhere. States that span two zones get the zone most of their people
//! live in, refined by ZIP prefix where the minority zone is a well-known
//! block (El Paso, the Florida panhandle, north Idaho). Arizona stays on
//! `America/Phoenix` (no DST) and Hawaii on `Pacific/Honolulu`; getting
//! those wrong shifts half a year of scans by an hour.

use chrono_tz::Tz;

/// The zone for a US state or territory code (`"AZ"`), refined by the first
/// three digits of a ZIP code where the state spans zones.
pub fn us_zone(state: &str, zip: Option<&str>) -> Option<Tz> {
    use chrono_tz::America as A;
    use chrono_tz::Pacific as P;
    let prefix = zip
        .map(str::trim)
        .filter(|z| z.len() >= 3 && z.as_bytes()[..3].iter().all(u8::is_ascii_digit))
        .map(|z| &z[..3]);
    let zone = match state {
        "CT" | "DE" | "DC" | "GA" | "ME" | "MD" | "MA" | "NH" | "NJ" | "NY" | "NC" | "OH"
        | "PA" | "RI" | "SC" | "VT" | "VA" | "WV" => A::New_York,
        "MI" => A::Detroit,
        "FL" => match prefix {
            Some("324" | "325") => A::Chicago,
            _ => A::New_York,
        },
        "IN" => match prefix {
            Some("463" | "464" | "476" | "477") => A::Chicago,
            _ => A::Indiana::Indianapolis,
        },
        "KY" => match prefix {
            Some("420" | "421" | "422" | "423" | "424") => A::Chicago,
            _ => A::Kentucky::Louisville,
        },
        "TN" => match prefix {
            Some("373" | "374" | "376" | "377" | "378" | "379") => A::New_York,
            _ => A::Chicago,
        },
        "AL" | "AR" | "IL" | "IA" | "LA" | "MN" | "MS" | "MO" | "OK" | "WI" | "KS" | "ND" => {
            A::Chicago
        }
        "NE" => match prefix {
            Some("690" | "691" | "692" | "693") => A::Denver,
            _ => A::Chicago,
        },
        "SD" => match prefix {
            Some("577") => A::Denver,
            _ => A::Chicago,
        },
        "TX" => match prefix {
            Some("798" | "799" | "885") => A::Denver,
            _ => A::Chicago,
        },
        "CO" | "MT" | "NM" | "UT" | "WY" => A::Denver,
        "ID" => match prefix {
            Some("835" | "838") => A::Los_Angeles,
            _ => A::Boise,
        },
        "OR" => match prefix {
            Some("979") => A::Boise,
            _ => A::Los_Angeles,
        },
        "AZ" => A::Phoenix,
        "CA" | "NV" | "WA" => A::Los_Angeles,
        "AK" => A::Anchorage,
        "HI" => P::Honolulu,
        "PR" => A::Puerto_Rico,
        "VI" => A::St_Thomas,
        "GU" | "MP" => P::Guam,
        "AS" => P::Pago_Pago,
        _ => return None,
    };
    Some(zone)
}

/// Whether `code` is a US state, DC or a US territory with USPS service.
pub fn is_us_state(code: &str) -> bool {
    us_zone(code, None).is_some()
}

fn canada_zone(province: &str) -> Option<Tz> {
    use chrono_tz::America as A;
    Some(match province {
        "ON" | "QC" => A::Toronto,
        "BC" => A::Vancouver,
        "AB" => A::Edmonton,
        "SK" => A::Regina,
        "MB" => A::Winnipeg,
        "NB" | "NS" | "PE" => A::Halifax,
        "NL" => A::St_Johns,
        "YT" => A::Whitehorse,
        "NT" => A::Yellowknife,
        "NU" => A::Iqaluit,
        _ => return None,
    })
}

fn australia_zone(state: &str) -> Option<Tz> {
    use chrono_tz::Australia as AU;
    Some(match state {
        "NSW" | "ACT" => AU::Sydney,
        "VIC" => AU::Melbourne,
        "QLD" => AU::Brisbane,
        "SA" => AU::Adelaide,
        "WA" => AU::Perth,
        "TAS" => AU::Hobart,
        "NT" => AU::Darwin,
        _ => return None,
    })
}

/// The zone of a country (ISO 3166-1 alpha-2), for countries with one zone
/// or one zone that most parcels see. Multi-zone countries without a region
/// give their most populous zone (US: New York, CA: Toronto, AU: Sydney,
/// BR: Sao Paulo, MX: Mexico City, RU: Moscow).
pub fn country_zone(country: &str) -> Option<Tz> {
    use chrono_tz::{Africa, America, Asia, Australia, Europe, Pacific};
    Some(match country {
        "US" => America::New_York,
        "CA" => America::Toronto,
        "MX" => America::Mexico_City,
        "BR" => America::Sao_Paulo,
        "AR" => America::Argentina::Buenos_Aires,
        "CL" => America::Santiago,
        "CO" => America::Bogota,
        "PE" => America::Lima,
        "PR" => America::Puerto_Rico,
        "GB" => Europe::London,
        "IE" => Europe::Dublin,
        "PT" => Europe::Lisbon,
        "ES" => Europe::Madrid,
        "FR" => Europe::Paris,
        "BE" => Europe::Brussels,
        "NL" => Europe::Amsterdam,
        "LU" => Europe::Luxembourg,
        "DE" => Europe::Berlin,
        "CH" => Europe::Zurich,
        "AT" => Europe::Vienna,
        "IT" => Europe::Rome,
        "DK" => Europe::Copenhagen,
        "NO" => Europe::Oslo,
        "SE" => Europe::Stockholm,
        "FI" => Europe::Helsinki,
        "PL" => Europe::Warsaw,
        "CZ" => Europe::Prague,
        "SK" => Europe::Bratislava,
        "HU" => Europe::Budapest,
        "RO" => Europe::Bucharest,
        "BG" => Europe::Sofia,
        "GR" => Europe::Athens,
        "TR" => Europe::Istanbul,
        "UA" => Europe::Kyiv,
        "RU" => Europe::Moscow,
        "IL" => Asia::Jerusalem,
        "AE" => Asia::Dubai,
        "SA" => Asia::Riyadh,
        "IN" => Asia::Kolkata,
        "CN" => Asia::Shanghai,
        "HK" => Asia::Hong_Kong,
        "TW" => Asia::Taipei,
        "JP" => Asia::Tokyo,
        "KR" => Asia::Seoul,
        "SG" => Asia::Singapore,
        "MY" => Asia::Kuala_Lumpur,
        "TH" => Asia::Bangkok,
        "VN" => Asia::Ho_Chi_Minh,
        "PH" => Asia::Manila,
        "ID" => Asia::Jakarta,
        "AU" => Australia::Sydney,
        "NZ" => Pacific::Auckland,
        "ZA" => Africa::Johannesburg,
        "EG" => Africa::Cairo,
        "NG" => Africa::Lagos,
        "KE" => Africa::Nairobi,
        _ => return None,
    })
}

/// The best zone for a normalized location (upper-case fields): region
/// first for the US, Canada and Australia, then the country. A US-looking
/// state with no country is read as the US (USPS leaves `eventCountry`
/// null on domestic scans).
pub fn infer_zone(
    country: Option<&str>,
    region: Option<&str>,
    postal_code: Option<&str>,
) -> Option<Tz> {
    match (country, region) {
        (Some("US") | None, Some(state)) if is_us_state(state) => us_zone(state, postal_code),
        (Some("CA"), Some(p)) => canada_zone(p).or_else(|| country_zone("CA")),
        (Some("AU"), Some(s)) => australia_zone(s).or_else(|| country_zone("AU")),
        (Some(c), _) => country_zone(c),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_dst_and_pacific_zones() {
        assert_eq!(us_zone("AZ", None), Some(chrono_tz::America::Phoenix));
        assert_eq!(
            us_zone("HI", Some("96815")),
            Some(chrono_tz::Pacific::Honolulu)
        );
        assert_eq!(us_zone("AK", None), Some(chrono_tz::America::Anchorage));
    }

    #[test]
    fn split_states_follow_zip_prefix() {
        assert_eq!(
            us_zone("TX", Some("79901")),
            Some(chrono_tz::America::Denver)
        );
        assert_eq!(
            us_zone("TX", Some("75201")),
            Some(chrono_tz::America::Chicago)
        );
        assert_eq!(
            us_zone("FL", Some("32501")),
            Some(chrono_tz::America::Chicago)
        );
        assert_eq!(
            us_zone("FL", Some("33101")),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(
            us_zone("ID", Some("83814")),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(
            us_zone("TN", Some("37902")),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(us_zone("TN", Some("AB")), Some(chrono_tz::America::Chicago));
    }

    #[test]
    fn region_beats_country_and_unknowns_are_none() {
        assert_eq!(
            infer_zone(None, Some("HI"), None),
            Some(chrono_tz::Pacific::Honolulu)
        );
        assert_eq!(
            infer_zone(Some("US"), Some("CA"), None),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(
            infer_zone(Some("CA"), Some("BC"), None),
            Some(chrono_tz::America::Vancouver)
        );
        assert_eq!(
            infer_zone(Some("AU"), Some("WA"), None),
            Some(chrono_tz::Australia::Perth)
        );
        assert_eq!(
            infer_zone(Some("NL"), None, None),
            Some(chrono_tz::Europe::Amsterdam)
        );
        assert_eq!(infer_zone(Some("XX"), None, None), None);
        assert_eq!(infer_zone(None, Some("ZZ"), None), None);
        assert_eq!(infer_zone(None, None, None), None);
    }
}
