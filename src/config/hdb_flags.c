/*
 * hdb_flags.c - hilbertd's command line: the flag table, the --help text and
 * hdb_config_from_args, which applies defaults, then the --config file, then the other flags.
 *
 * Each flag that sets a value names its key in the key table (hdb_config.c), so it is parsed
 * and range-checked exactly like that key in the file, and --help prints the key's default.
 */
#include "hdb_config_int.h"

#include "hdb_err.h"
#include "hdb_mem.h"

#include <string.h>

typedef struct {
    const char *name;    /* "--threads" */
    const char *metavar; /* "N"; NULL for flags without a value */
    const char *key;     /* the config key it sets; NULL for --config, --help, --version */
    const char *help;
} flag_spec;

static const flag_spec flag_table[] = {
    {"--config", "PATH", NULL, "YAML config file, keys as in config/hilbertd.yaml"},
    {"--listen", "ADDR", "server.listen", "gRPC address, host:port or unix:PATH"},
    {"--data-dir", "DIR", "storage.data_dir", "where RocksDB and index snapshots live"},
    {"--threads", "N", "server.threads", "threads that handle calls, 1..256"},
    {"--log-level", "LEVEL", "log.level", "debug, info, warn, error or off"},
    {"--help", NULL, NULL, "print this help and exit"},
    {"--version", NULL, NULL, "print the version and exit"},
};

#define N_FLAGS (sizeof flag_table / sizeof flag_table[0])

static const flag_spec *find_flag(const char *arg, size_t len) {
    for (size_t i = 0; i < N_FLAGS; i++)
        if (strlen(flag_table[i].name) == len && memcmp(flag_table[i].name, arg, len) == 0)
            return &flag_table[i];
    return NULL;
}

static void print_usage(FILE *out) {
    hdb_config defaults;
    char val[128], left[40];
    hdb__config_fill_defaults(&defaults);
    fprintf(out, "Usage: hilbertd [--config PATH] [--listen ADDR] [--data-dir DIR] [--threads N]\n"
                 "                [--log-level LEVEL]\n"
                 "\n"
                 "HilbertDB, a vector database server speaking gRPC.\n"
                 "\n"
                 "Settings are applied in this order: built-in defaults, then the --config file,\n"
                 "then the other flags (flags win). config/hilbertd.yaml lists every key of the\n"
                 "file with its meaning, type, default and range.\n"
                 "\n"
                 "Flags (each also accepts the --flag=value form):\n");
    for (size_t i = 0; i < N_FLAGS; i++) {
        const flag_spec *f = &flag_table[i];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->metavar ? " " : "",
                 f->metavar ? f->metavar : "");
        if (f->key != NULL)
            fprintf(
                out, "  %-18s %s (%s; default: %s)\n", left, f->help, f->key,
                hdb__config_format_value(&defaults, hdb__config_find_key(f->key), val, sizeof val));
        else if (f->metavar != NULL)
            fprintf(out, "  %-18s %s (default: none)\n", left, f->help);
        else
            fprintf(out, "  %-18s %s\n", left, f->help);
    }
}

/* Builds c from argv (see hdb_config.h). A flag given twice takes its last value; that includes
 * --config (only the last file is read). Syntax errors in argv (unknown flags, missing values)
 * are reported before --help and --version are honoured. All or nothing: on error c is
 * unchanged. out NULL means stdout. */
int hdb_config_from_args(hdb_config *c, int argc, char **argv, FILE *out, hdb_config_action *action,
                         char *err, size_t errlen) {
    typedef struct {
        const flag_spec *flag;
        const char *value;
    } setting;
    setting *sets = NULL;
    size_t nsets = 0;
    const char *config_path = NULL;
    bool help = false, version = false;
    char msg[512];
    hdb_config work;
    int rc = HDB_OK;

    HDB_ASSERT(c != NULL && c->arena != NULL && action != NULL);
    HDB_ASSERT(argc == 0 || argv != NULL);
    *action = HDB_CONFIG_RUN;
    if (out == NULL) out = stdout;
    sets = hdb_calloc(argc > 0 ? (size_t)argc : 1, sizeof *sets);

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
            rc = hdb_errf(err, errlen, HDB_EINVAL,
                          "unexpected argument \"%s\" (hilbertd takes only --flags; see --help)",
                          arg);
            goto done;
        }
        const char *eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        const flag_spec *f = find_flag(arg, namelen);
        if (f == NULL) {
            rc = hdb_errf(err, errlen, HDB_EINVAL, "unknown flag %.*s (see --help)", (int)namelen,
                          arg);
            goto done;
        }
        if (f->metavar == NULL) {
            if (eq != NULL) {
                rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: takes no value", f->name);
                goto done;
            }
            if (strcmp(f->name, "--help") == 0)
                help = true;
            else
                version = true;
            continue;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: missing value (%s %s)", f->name, f->name,
                          f->metavar);
            goto done;
        }
        if (f->key == NULL) {
            if (value[0] == '\0') {
                rc = hdb_errf(err, errlen, HDB_EINVAL, "%s: missing value (%s %s)", f->name,
                              f->name, f->metavar);
                goto done;
            }
            config_path = value;
        } else {
            sets[nsets++] = (setting){f, value};
        }
    }

    if (help) {
        print_usage(out);
        *action = HDB_CONFIG_EXIT;
        goto done;
    }
    if (version) {
        fprintf(out, "%s\n", hdb_version_string());
        *action = HDB_CONFIG_EXIT;
        goto done;
    }

    work = *c;
    if (config_path != NULL &&
        (rc = hdb_config_load_file(&work, config_path, err, errlen)) != HDB_OK)
        goto done;
    for (size_t i = 0; i < nsets; i++) {
        const hdb__config_key *k = hdb__config_find_key(sets[i].flag->key);
        HDB_ASSERT(k != NULL);
        rc = hdb__config_set_value(&work, k, sets[i].value, strlen(sets[i].value), false, msg,
                                   sizeof msg);
        if (rc != HDB_OK) {
            rc = hdb_errf(err, errlen, rc, "%s: %s", sets[i].flag->name, msg);
            goto done;
        }
    }
    if ((rc = hdb_config_validate(&work, err, errlen)) != HDB_OK) goto done;
    *c = work;

done:
    hdb_free(sets);
    return rc;
}
