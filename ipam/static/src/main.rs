//! The `static` binary: the reference's name, so conflists do not change.
fn main() {
    rcni_skel::run(&rcni_static::Static)
}
