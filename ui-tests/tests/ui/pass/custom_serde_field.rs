//! A field serialised `with` a module need not implement serde itself.
use natask_runtime::task;

struct Celsius(f64);

mod as_float {
    pub fn serialize<S: serde::Serializer>(c: &super::Celsius, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(c.0)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<super::Celsius, D::Error> {
        <f64 as serde::Deserialize>::deserialize(d).map(super::Celsius)
    }
}

#[task]
async fn set_temperature(#[serde(with = "as_float")] target: Celsius) {
    let _ = target.0;
}

fn main() {
    let t = SetTemperature::new(Celsius(21.5));
    assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"target":21.5}"#);
}
