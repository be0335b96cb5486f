use natask_runtime::task;

#[task]
async unsafe fn send_email(to: String) {
    let _ = to;
}

fn main() {}
