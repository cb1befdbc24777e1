/// The `sz` to give a libbpf options struct whose fields Swift set up to and including `lastField`.
///
/// libbpf refuses options whose bytes past its own last field are not zero (EINVAL, "has non-zero extra
/// bytes"), and Swift does not promise zeroed padding at the end of an imported struct: the full
/// `MemoryLayout.size` works or not depending on what the stack held before. Declaring the size up to the
/// last field we set is always valid, and libbpf reads every later field as its default.
func libbpfOptionsSize<Options, Field>(_: Options.Type, through lastField: KeyPath<Options, Field>) -> Int {
    guard let offset = MemoryLayout<Options>.offset(of: lastField) else {
        preconditionFailure("libbpf options fields are stored properties")
    }
    return offset + MemoryLayout<Field>.size
}
