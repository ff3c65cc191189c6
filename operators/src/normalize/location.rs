//! One spelling for every place, whichever carrier or channel reported it.
//!
//! The same scan can arrive by webhook as "Atlanta" and by poll as
//! "ATLANTA ", or as "Oderweg 2, AMSTERDAM" from one DHL division and
//! "AMSTERDAM - NETHERLANDS" from another. Dedup must not depend on such
//! formatting, and debounce compares cities, so every text field is
//! trimmed, has its inner whitespace collapsed to one space, and is
//! upper-cased (the carriers' own majority style: UPS, USPS and FedEx send
//! upper case). Countries become ISO 3166-1 alpha-2 codes or nothing.

use crate::model::Location;

/// Trims, collapses whitespace runs to one space and upper-cases. Empty or
/// whitespace-only text is `None`.
pub(crate) fn clean(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    if text.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c.is_ascii() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.extend(c.to_uppercase());
        }
    }
    Some(out)
}

/// An ISO alpha-2 code from what a carrier put in its country field: a
/// two-letter code, a three-letter code or an English country name. `None`
/// when it is none of the ones we know.
pub(crate) fn country_code(text: Option<&str>) -> Option<String> {
    let upper = clean(text)?;
    if upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(upper);
    }
    COUNTRY_NAMES
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, code)| (*code).to_owned())
}

/// English names and ISO alpha-3 codes carriers use, to alpha-2.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("USA", "US"),
    ("UNITED STATES", "US"),
    ("UNITED STATES OF AMERICA", "US"),
    ("CAN", "CA"),
    ("CANADA", "CA"),
    ("MEX", "MX"),
    ("MEXICO", "MX"),
    ("GBR", "GB"),
    ("UNITED KINGDOM", "GB"),
    ("GREAT BRITAIN", "GB"),
    ("DEU", "DE"),
    ("GERMANY", "DE"),
    ("NLD", "NL"),
    ("NETHERLANDS", "NL"),
    ("THE NETHERLANDS", "NL"),
    ("FRA", "FR"),
    ("FRANCE", "FR"),
    ("BEL", "BE"),
    ("BELGIUM", "BE"),
    ("ESP", "ES"),
    ("SPAIN", "ES"),
    ("ITA", "IT"),
    ("ITALY", "IT"),
    ("POL", "PL"),
    ("POLAND", "PL"),
    ("CHE", "CH"),
    ("SWITZERLAND", "CH"),
    ("AUT", "AT"),
    ("AUSTRIA", "AT"),
    ("SWEDEN", "SE"),
    ("DENMARK", "DK"),
    ("IRELAND", "IE"),
    ("CHN", "CN"),
    ("CHINA", "CN"),
    ("CHINA MAINLAND", "CN"),
    ("CHINA, PEOPLES REPUBLIC", "CN"),
    ("HONG KONG", "HK"),
    ("HONG KONG SAR, CHINA", "HK"),
    ("JPN", "JP"),
    ("JAPAN", "JP"),
    ("KOREA, SOUTH", "KR"),
    ("SOUTH KOREA", "KR"),
    ("SINGAPORE", "SG"),
    ("INDIA", "IN"),
    ("AUS", "AU"),
    ("AUSTRALIA", "AU"),
    ("NEW ZEALAND", "NZ"),
    ("UNITED ARAB EMIRATES", "AE"),
    ("BRAZIL", "BR"),
];

/// Builds a [`Location`] from raw carrier fields.
pub(crate) fn location(
    city: Option<&str>,
    region: Option<&str>,
    postal_code: Option<&str>,
    country: Option<&str>,
) -> Location {
    Location {
        city: clean(city),
        region: clean(region),
        postal_code: clean(postal_code),
        country: country_code(country),
    }
}

/// Splits DHL's free-text `addressLocality` into city, region and
/// country:
/// - `"LEIPZIG - GERMANY"` (Express): a country name after " - ".
/// - `"Tempe, AZ, US"` (eCommerce): comma parts; a trailing country code
///   (two letters only when three or more parts, else it reads as a
///   region), then a trailing region code of two or three letters.
/// - `"Oderweg 2, AMSTERDAM"`: the street line before a comma is dropped.
///
/// Text with none of these patterns is the city as written.
pub(crate) fn split_locality(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    let mut country = None;
    let mut place = text;
    if let Some((head, tail)) = text.rsplit_once(" - ")
        && tail.trim().len() > 2
        && let Some(code) = country_code(Some(tail))
    {
        country = Some(code);
        place = head;
    }
    let mut parts: Vec<&str> = place
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if country.is_none() && parts.len() >= 2 {
        let last = parts[parts.len() - 1];
        let is_code = last.len() == 2 && last.bytes().all(|b| b.is_ascii_alphabetic());
        if (!is_code || parts.len() >= 3)
            && let Some(code) = country_code(Some(last))
        {
            country = Some(code);
            parts.pop();
        }
    }
    let mut region = None;
    if parts.len() >= 2 {
        let last = parts[parts.len() - 1];
        if (2..=3).contains(&last.len()) && last.bytes().all(|b| b.is_ascii_alphabetic()) {
            region = clean(Some(last));
            parts.pop();
        }
    }
    let city = parts
        .iter()
        .rev()
        .find(|p| {
            !p.starts_with(|c: char| c.is_ascii_digit()) && p.chars().any(char::is_alphabetic)
        })
        .or(parts.last())
        .copied();
    (clean(city), region, country)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casing_and_whitespace_do_not_matter() {
        assert_eq!(clean(Some("  Atlanta ")), Some("ATLANTA".into()));
        assert_eq!(
            clean(Some("QUEENS  NY\tDISTRIBUTION CENTER")),
            Some("QUEENS NY DISTRIBUTION CENTER".into())
        );
        assert_eq!(clean(Some("Köln")), Some("KÖLN".into()));
        assert_eq!(clean(Some("   ")), None);
        assert_eq!(clean(None), None);
        assert_eq!(
            location(Some("atlanta"), Some("ga"), None, None),
            location(Some("ATLANTA "), Some("GA"), None, None)
        );
    }

    #[test]
    fn countries() {
        assert_eq!(country_code(Some("us")), Some("US".into()));
        assert_eq!(country_code(Some("United States")), Some("US".into()));
        assert_eq!(country_code(Some("GERMANY")), Some("DE".into()));
        assert_eq!(country_code(Some("Atlantis")), None);
        assert_eq!(country_code(Some("")), None);
    }

    #[test]
    fn dhl_localities() {
        let s = |c: Option<&str>, r: Option<&str>, n: Option<&str>| {
            (
                c.map(String::from),
                r.map(String::from),
                n.map(String::from),
            )
        };
        assert_eq!(
            split_locality("LEIPZIG - GERMANY"),
            s(Some("LEIPZIG"), None, Some("DE"))
        );
        assert_eq!(
            split_locality("Oderweg 2, AMSTERDAM"),
            s(Some("AMSTERDAM"), None, None)
        );
        assert_eq!(split_locality("Bonn"), s(Some("BONN"), None, None));
        assert_eq!(
            split_locality("CINCINNATI HUB - OH - USA"),
            s(Some("CINCINNATI HUB - OH"), None, Some("US"))
        );
        assert_eq!(
            split_locality("Paris - Nord"),
            s(Some("PARIS - NORD"), None, None)
        );
        assert_eq!(
            split_locality("Tempe, AZ, US"),
            s(Some("TEMPE"), Some("AZ"), Some("US"))
        );
        assert_eq!(
            split_locality("Tempe, AZ"),
            s(Some("TEMPE"), Some("AZ"), None)
        );
        assert_eq!(
            split_locality("Toronto, Canada"),
            s(Some("TORONTO"), None, Some("CA"))
        );
        assert_eq!(
            split_locality("53113 Bonn, Germany"),
            s(Some("53113 BONN"), None, Some("DE"))
        );
    }
}
