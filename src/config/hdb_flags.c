/*
 * hdb_flags.c - hilbertd's command line: the flag table, the --help text and
 * hdb_config_from_args, which applies defaults, then the --config file, then the other flags.
 *
 * Each flag that sets a value names its key in the key table (hdb_config.c), so it is parsed
 * and range-checked exactly like that key in the file, and --help prints the key's default.
 */
#include "hdb_config_int.h"

#include "hdb_arena.h"
#include "hdb_err.h"
#include "hdb_mem.h"

#include <string.h>

typedef struct {
    const char *name;    /* "--threads" */
    const char *metavar; /* "N"; NULL for flags without a value */
    const char *key;     /* the config key it sets; NULL for --config, the key tool, --help... */
    const char *help;
} flag_spec;

static const flag_spec flag_table[] = {
    {"--config", "PATH", NULL, "YAML config file, keys as in config/hilbertd.yaml"},
    {"--listen", "ADDR", "server.listen", "gRPC address, host:port or unix:PATH"},
    {"--data-dir", "DIR", "storage.data_dir", "where RocksDB and index snapshots live"},
    {"--threads", "N", "server.threads", "threads that run searches, 1..256"},
    {"--log-level", "LEVEL", "log.level", "debug, info, warn, error or off"},
    {"--allow-insecure", "BOOL", "server.allow_insecure", "non-loopback listen without TLS+keys"},
    {"--restore", "DIR", NULL, "restore the backup in DIR into --data-dir (new or empty), exit"},
    {"--hash-key", "ROLE", NULL, "read a key from stdin, print its auth.keys entry, exit"},
    {"--new-key", "ROLE", NULL, "print a new random API key and its auth.keys entry, exit"},
    {"--health-probe", "ADDR", NULL, "one health check of the server at ADDR; exit 0 if SERVING"},
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
                 "                [--log-level LEVEL] [--allow-insecure BOOL]\n"
                 "       hilbertd --restore BACKUP_DIR --data-dir NEW_DIR [--config PATH]\n"
                 "       hilbertd --new-key ROLE | --hash-key ROLE < KEYFILE\n"
                 "       hilbertd --health-probe HOST:PORT\n"
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
                out, "  %-21s %s (%s; default: %s)\n", left, f->help, f->key,
                hdb__config_format_value(&defaults, hdb__config_find_key(f->key), val, sizeof val));
        else if (strcmp(f->name, "--config") == 0)
            fprintf(out, "  %-21s %s (default: none)\n", left, f->help);
        else
            fprintf(out, "  %-21s %s\n", left, f->help);
    }
    fprintf(out,
            "\n"
            "Security: with keys under auth.keys, every call but Health needs an API key\n"
            "(authorization: Bearer KEY, or x-api-key: KEY). tls.cert_file and tls.key_file turn\n"
            "on TLS; SIGHUP reloads the certificate files. A non-loopback server.listen needs\n"
            "both, or server.allow_insecure: true. ROLE is read, write or admin. --hash-key\n"
            "takes the key only on stdin (one line), never as an argument, so that it stays out\n"
            "of the process list and the shell history.\n"
            "\n"
            "Backup: the hilbert.v1.Admin/Backup call (admin key) writes a consistent backup of\n"
            "the running server into a new directory (under storage.backup_dir when set).\n"
            "--restore copies one into a data dir that must not exist or be empty, prints what\n"
            "it restored and exits (0; 2 when DIR is not a backup or the data dir is not\n"
            "empty); then start hilbertd on that data dir.\n"
            "\n"
            "Health probe: --health-probe ADDR sends one grpc.health.v1.Health/Check (service\n"
            "\"\") to ADDR over plaintext with a 3 s deadline, prints SERVING, NOT_SERVING or the\n"
            "call's error, and exits 0 only for SERVING (1 otherwise). It reads no config; for\n"
            "container health checks (docker/compose.yaml).\n");
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
    const char *config_path = NULL, *key_role = NULL, *restore = NULL, *probe = NULL;
    hdb_config_action key_tool = HDB_CONFIG_RUN;
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
            if (strcmp(f->name, "--config") == 0) {
                config_path = value;
                continue;
            }
            if (strcmp(f->name, "--restore") == 0) {
                restore = value;
                continue;
            }
            if (strcmp(f->name, "--health-probe") == 0) {
                probe = value;
                continue;
            }
            hdb_role r;
            if (hdb_role_parse(value, &r) != HDB_OK) {
                rc = hdb_errf(err, errlen, HDB_EINVAL,
                              "%s: the role must be read, write or admin (got \"%.40s\")",
                              f->name, value);
                goto done;
            }
            key_role = value;
            key_tool =
                strcmp(f->name, "--new-key") == 0 ? HDB_CONFIG_NEW_KEY : HDB_CONFIG_HASH_KEY;
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
    if (probe != NULL) { /* nor does the probe */
        c->probe_addr = hdb_arena_strndup(c->arena, probe, strlen(probe));
        *action = HDB_CONFIG_HEALTH_PROBE;
        goto done;
    }
    if (key_tool != HDB_CONFIG_RUN) { /* the key tool reads no config */
        hdb_role_parse(key_role, &c->key_tool_role);
        *action = key_tool;
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
    if (restore != NULL) {
        work.restore_from = hdb_arena_strndup(work.arena, restore, strlen(restore));
        *action = HDB_CONFIG_RESTORE;
    }
    *c = work;

done:
    hdb_free(sets);
    return rc;
}
