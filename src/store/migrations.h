/*
 * migrations.h: the schema, as numbered steps.  A step is never edited once
 * released; a change is a new step.  Backends apply, in one transaction each,
 * the steps above the version they find.
 */
#ifndef MDM_MIGRATIONS_H
#define MDM_MIGRATIONS_H

struct mdm_migration {
  int version;
  const char *name;
  const char *sql;
};

extern const struct mdm_migration mdm_sqlite_migrations[];
extern const int mdm_sqlite_n_migrations;

#endif
