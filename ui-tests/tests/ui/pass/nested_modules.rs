//! Tasks inside nested modules; the wire name is the fn name alone.
pub mod app {
    pub mod billing {
        pub mod jobs {
            #[natask_runtime::task(queue = "billing")]
            pub async fn charge(cents: u64) {
                let _ = cents;
            }
        }
    }
}

fn main() {
    use natask_runtime::Task;
    assert_eq!(app::billing::jobs::Charge::NAME, "charge");
    assert!(app::billing::jobs::Charge::ENTRY.module_path.ends_with("app::billing::jobs"));
}
