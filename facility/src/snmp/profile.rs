//! Vendor profiles: which OIDs of a PDU's MIB hold which reading and how to scale them, as TOML
//! data (`facility/profiles/*.toml`, built into the binary, or a file of the user's). Each
//! `[[reading]]` names the point on the PDU, the [`FacilityQuantity`], the numeric OID, a scale
//! factor, and where the MIB has them, the OIDs of the sensor's decimal digits and units, and raw
//! values that mean "not measured". Every error names the file, line and column and what to write.

use hallmark_protocol::facility::{FacilityQuantity, MAX_FACILITY_TEXT_BYTES};
use hallmark_protocol::textpos::{explain_toml, key_start, line_col};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// The profiles built into the binary: name and TOML text.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    (
        "raritan-pdu2",
        include_str!("../../profiles/raritan-pdu2.toml"),
    ),
    ("apc-rpdu2", include_str!("../../profiles/apc-rpdu2.toml")),
];

/// Most readings one profile may list (each is at most three OIDs of one poll).
pub const MAX_READINGS: usize = 64;
/// Most arcs of an OID (RFC 2578 allows 128).
const MAX_ARCS: usize = 128;

/// A numeric object identifier (`1.3.6.1.4.1.13742.…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(Vec<u32>);

impl Oid {
    /// Parses dot-separated numbers, with or without a leading dot. Names (`PDU2-MIB::…`) are not
    /// resolved: a profile holds numbers so that no MIB file is needed at run time.
    pub fn parse(s: &str) -> Result<Oid, String> {
        let body = s.strip_prefix('.').unwrap_or(s);
        let arcs: Option<Vec<u32>> = body.split('.').map(|a| a.parse().ok()).collect();
        let hint = "write the OID as dot-separated numbers, e.g. 1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5 (MIB names are not resolved)";
        match arcs {
            None => Err(format!("`{s}` is not a numeric OID; {hint}")),
            Some(a) if a.len() < 2 || a.len() > MAX_ARCS => Err(format!(
                "`{s}` has {} arcs, an OID has 2 to {MAX_ARCS}; {hint}",
                a.len()
            )),
            Some(a) if a[0] > 2 || (a[0] < 2 && a[1] > 39) => Err(format!(
                "`{s}` does not start with a valid arc (0, 1 or 2, then 0-39 below 2); {hint}"
            )),
            Some(a) => Ok(Oid(a)),
        }
    }

    pub fn arcs(&self) -> &[u32] {
        &self.0
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// One reading of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileEntry {
    /// Where on the PDU (`inlet/1`, `phase/2`); empty for the whole unit.
    pub point: String,
    pub quantity: FacilityQuantity,
    pub oid: Oid,
    /// The raw number times `scale` (divided by 10^digits where `decimal_digits_oid` is given) is
    /// the reading in the quantity's unit.
    pub scale: f64,
    /// The OID of the sensor's decimal digits (Raritan's `inletSensorDecimalDigits`).
    pub decimal_digits_oid: Option<Oid>,
    /// The OID of the sensor's units and the value it must answer (Raritan's `inletSensorUnits`,
    /// `watt(3)`); any other answer makes the reading absent.
    pub units: Option<(Oid, i64)>,
    /// Raw values that mean "not measured" (APC answers -1 where a model lacks the feature).
    pub absent_if: Vec<i64>,
}

/// A vendor profile: its readings, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The built-in name, or the file name it was read from.
    pub name: String,
    pub vendor: String,
    pub mib: String,
    pub entries: Vec<ProfileEntry>,
}

/// Why a profile was refused: where, and what is wrong and what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub file: String,
    /// 1-based; 0 when the error is about no place in a file (an unknown built-in name).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ProfileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    vendor: String,
    mib: String,
    #[serde(default)]
    reading: Vec<Spanned<ReadingFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingFile {
    point: Spanned<String>,
    quantity: Spanned<String>,
    oid: Spanned<String>,
    scale: Option<Spanned<f64>>,
    decimal_digits_oid: Option<Spanned<String>>,
    units_oid: Option<Spanned<String>>,
    units: Option<Spanned<i64>>,
    #[serde(default)]
    absent_if: Vec<i64>,
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ProfileError {
        let (line, column) = line_col(self.text, span.start);
        ProfileError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about the value at `span`, placed at its key.
    fn at_key(&self, span: Range<usize>, message: impl Into<String>) -> ProfileError {
        let start = key_start(self.text, span.start);
        self.err(start..span.end, message)
    }

    fn oid(&self, s: &Spanned<String>) -> Result<Oid, ProfileError> {
        Oid::parse(s.get_ref()).map_err(|m| self.at_key(s.span(), m))
    }
}

impl Profile {
    /// A built-in profile by name (see [`BUILTIN_PROFILES`]).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        match BUILTIN_PROFILES.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => {
                let mut p = Profile::from_toml(text, &format!("built-in profile {n}"))?;
                p.name = n.to_string();
                Ok(p)
            }
            None => Err(ProfileError {
                file: format!("SNMP profile {name}"),
                line: 0,
                column: 0,
                message: format!(
                    "no built-in SNMP profile `{name}`; the built-in ones are {}, or give a profile file",
                    BUILTIN_PROFILES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// Reads and checks a profile. `file_name` names it in errors and becomes its name.
    pub fn from_toml(text: &str, file_name: &str) -> Result<Profile, ProfileError> {
        let cx = Cx {
            text,
            file: file_name,
        };
        let file: ProfileFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..text.len());
            let m = explain_toml(text, span.clone(), e.message().trim_end(), "SNMP profile");
            cx.err(span, m.message)
        })?;
        if file.reading.is_empty() {
            return Err(cx.err(
                0..0,
                "the profile lists no readings; add a [[reading]] table with point, quantity and oid",
            ));
        }
        if file.reading.len() > MAX_READINGS {
            return Err(cx.err(
                file.reading[MAX_READINGS].span(),
                format!("more than {MAX_READINGS} readings; split the PDU into several sources"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut entries = Vec::with_capacity(file.reading.len());
        for r in &file.reading {
            let entry = convert(&cx, r.get_ref())?;
            if !seen.insert((entry.point.clone(), entry.quantity)) {
                return Err(cx.err(
                    r.span(),
                    format!(
                        "a second `{}` reading for point `{}`; each point has one reading per quantity",
                        entry.quantity.as_str(),
                        entry.point
                    ),
                ));
            }
            entries.push(entry);
        }
        Ok(Profile {
            name: file_name.to_string(),
            vendor: file.vendor,
            mib: file.mib,
            entries,
        })
    }
}

fn convert(cx: &Cx, r: &ReadingFile) -> Result<ProfileEntry, ProfileError> {
    let point = r.point.get_ref();
    if point.len() > MAX_FACILITY_TEXT_BYTES || point.chars().any(char::is_control) {
        return Err(cx.at_key(
            r.point.span(),
            format!("a point name is at most {MAX_FACILITY_TEXT_BYTES} bytes without control characters"),
        ));
    }
    let quantity = FacilityQuantity::parse(r.quantity.get_ref()).ok_or_else(|| {
        cx.at_key(
            r.quantity.span(),
            format!(
                "unknown quantity `{}`; write one of {}",
                r.quantity.get_ref(),
                FacilityQuantity::ALL.map(|q| q.as_str()).join(", ")
            ),
        )
    })?;
    let scale = match &r.scale {
        None => 1.0,
        Some(s) if s.get_ref().is_finite() && *s.get_ref() != 0.0 => *s.get_ref(),
        Some(s) => {
            return Err(cx.at_key(
                s.span(),
                "scale must be a finite number other than 0 (e.g. 10 for hundredths of kW to W, 0.001 for Wh to kWh)",
            ))
        }
    };
    let units = match (&r.units_oid, &r.units) {
        (Some(o), Some(u)) => Some((cx.oid(o)?, *u.get_ref())),
        (None, None) => None,
        (Some(o), None) => {
            return Err(cx.at_key(
                o.span(),
                "units_oid needs `units`, the value the agent must answer there (e.g. 3 for watt in PDU2-MIB)",
            ))
        }
        (None, Some(u)) => {
            return Err(cx.at_key(
                u.span(),
                "units needs `units_oid`, the OID whose value must equal it",
            ))
        }
    };
    Ok(ProfileEntry {
        point: point.clone(),
        quantity,
        oid: cx.oid(&r.oid)?,
        scale,
        decimal_digits_oid: r
            .decimal_digits_oid
            .as_ref()
            .map(|o| cx.oid(o))
            .transpose()?,
        units,
        absent_if: r.absent_if.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
vendor = "Example"
mib = "EXAMPLE-MIB"

[[reading]]
point = "inlet/1"
quantity = "power_w"
oid = ".1.3.6.1.4.1.99.1.1"
decimal_digits_oid = "1.3.6.1.4.1.99.2.1"
units_oid = "1.3.6.1.4.1.99.3.1"
units = 3

[[reading]]
point = ""
quantity = "energy_kwh"
oid = "1.3.6.1.4.1.99.1.2"
scale = 0.1
absent_if = [-1]
"#;

    #[test]
    fn a_profile_reads_with_its_defaults() {
        let p = Profile::from_toml(GOOD, "example.toml").unwrap();
        assert_eq!(
            (p.vendor.as_str(), p.mib.as_str()),
            ("Example", "EXAMPLE-MIB")
        );
        assert_eq!(p.entries.len(), 2);
        let e = &p.entries[0];
        assert_eq!(e.oid.to_string(), "1.3.6.1.4.1.99.1.1");
        assert_eq!(e.scale, 1.0);
        assert_eq!(e.quantity, FacilityQuantity::PowerW);
        assert_eq!(
            e.decimal_digits_oid.as_ref().unwrap().arcs().last(),
            Some(&1)
        );
        assert_eq!(e.units.as_ref().unwrap().1, 3);
        assert!(e.absent_if.is_empty());
        assert_eq!(p.entries[1].scale, 0.1);
        assert_eq!(p.entries[1].absent_if, vec![-1]);
    }

    #[test]
    fn builtin_profiles_all_read() {
        for (name, _) in BUILTIN_PROFILES {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.name, *name);
            assert!(!p.entries.is_empty());
        }
        let r = Profile::builtin("raritan-pdu2").unwrap();
        let power = &r.entries[0];
        assert_eq!(
            (power.point.as_str(), power.quantity),
            ("inlet/1", FacilityQuantity::PowerW)
        );
        assert_eq!(power.oid.to_string(), "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5");
        let e = Profile::builtin("raritan").unwrap_err().to_string();
        assert_eq!(
            e,
            "SNMP profile raritan: no built-in SNMP profile `raritan`; the built-in ones are \
             raritan-pdu2, apc-rpdu2, or give a profile file"
        );
    }

    fn err(text: &str) -> String {
        Profile::from_toml(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn bad_profiles_name_file_line_column_and_the_fix() {
        let bad_oid = GOOD.replace(".1.3.6.1.4.1.99.1.1", "PDU2-MIB::inletPower");
        let e = err(&bad_oid);
        assert!(
            e.starts_with("p.toml:8:1: `PDU2-MIB::inletPower` is not a numeric OID"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"power_w\"", "\"watts\""));
        assert!(
            e.starts_with("p.toml:7:1: unknown quantity `watts`; write one of power_w, energy_kwh"),
            "{e}"
        );
        let e = err(&GOOD.replace("scale = 0.1", "scale = 0.0"));
        assert!(
            e.starts_with("p.toml:17:1: scale must be a finite number other than 0"),
            "{e}"
        );
        let e = err(&GOOD.replace("units = 3\n", ""));
        assert!(e.starts_with("p.toml:10:1: units_oid needs `units`"), "{e}");
        let e = err(&GOOD.replace("scale = 0.1", "scael = 0.1"));
        assert!(e.starts_with("p.toml:17:1: unknown key `scael`"), "{e}");
        let e = err(&GOOD.replace("mib = ", "mibs = "));
        assert!(e.starts_with("p.toml:3:1: unknown key `mibs`"), "{e}");
        let e = err(&GOOD.replace("oid = \"1.3.6.1.4.1.99.1.2\"\n", ""));
        assert!(e.contains("missing key `oid`"), "{e}");
        let e = err(&GOOD
            .replace("\"energy_kwh\"", "\"power_w\"")
            .replace("point = \"\"", "point = \"inlet/1\""));
        assert!(
            e.starts_with("p.toml:13:1: a second `power_w` reading for point `inlet/1`"),
            "{e}"
        );
        let e = err("vendor = \"x\"\nmib = \"y\"\n");
        assert!(
            e.starts_with("p.toml:1:1: the profile lists no readings"),
            "{e}"
        );
        let e = err("vendor = \"x\"\nmib = \"y\"\n[reading]\npoint = \"a\"\n");
        assert!(e.contains("double brackets"), "{e}");
        let e = err(&GOOD.replace("\"1.3.6.1.4.1.99.1.2\"", "\"7.3.6\""));
        assert!(e.contains("does not start with a valid arc"), "{e}");
        let e = err(&GOOD.replace("\"1.3.6.1.4.1.99.1.2\"", "\"1\""));
        assert!(e.contains("has 1 arcs"), "{e}");
    }

    #[test]
    fn too_many_readings_are_refused() {
        let mut text = String::from("vendor = \"x\"\nmib = \"y\"\n");
        for i in 0..=MAX_READINGS {
            text.push_str(&format!(
                "[[reading]]\npoint = \"outlet/{i}\"\nquantity = \"power_w\"\noid = \"1.3.6.{i}\"\n"
            ));
        }
        let e = err(&text);
        assert!(e.contains("more than 64 readings"), "{e}");
    }
}
