package postgres

// SchemaVersion is the schema version this build migrates to.
var SchemaVersion = len(migrations)
