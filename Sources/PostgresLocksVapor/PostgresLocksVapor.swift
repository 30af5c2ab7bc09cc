// PostgresLocksVapor: PostgresLocks at home in a Vapor application.
//
// Built only with the package's `Vapor` trait (`Fluent` adds Fluent): without it this module is
// empty and nothing of Vapor is built. See the "Using PostgresLocks with Vapor and Fluent"
// article of PostgresLocks.
