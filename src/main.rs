fn main() {
    print!("{}", cutover::api::crds_yaml().unwrap());
}
