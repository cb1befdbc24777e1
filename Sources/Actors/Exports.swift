// Every runtime user of Actors works with socket addresses.
@_exported public import Addresses
