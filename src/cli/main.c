/* main.c — the epsinas command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} eps_command;

/* One line per subcommand; each module adds its own. */
static const eps_command commands[] = {
    {"score", eps_cmd_score, "score one architecture (prints epsilon, params, MACs)"},
    {"serve", eps_cmd_serve, "HTTP scoring service (see docs/service.md, openapi.yaml)"},
    {"sweep", eps_cmd_sweep, "score many architectures into a CSV (resumable, parallel)"},
    {"enumerate", eps_cmd_enumerate, "list every distinct cell of nb101 (423,624) or nb201 (15,625)"},
    {"merge", eps_cmd_merge, "merge sharded sweep CSVs (checks every index appears exactly once)"},
    {"eval", eps_cmd_eval, "correlation table of scores vs trained accuracy/loss (paper section 6)"},
    {"select", eps_cmd_select, "pick the best-scored of N random architectures (paper Table 3)"},
    {"search", eps_cmd_search, "random search / ageing evolution with an epsinas warm-up (look-up training)"},
    {"search-weights", eps_cmd_search_weights, "NaN fraction and rho of every weight pair (10^a, 10^b)"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "epsinas %s — zero-cost NAS scores (Gracheva, arXiv 2302.04406)\n\n"
            "Scores a neural-network architecture without training: the network is\n"
            "run twice on one fixed unlabelled batch with every weight set to a\n"
            "constant (w1, then w2); epsilon measures how differently the outputs\n"
            "spread. Higher epsilon predicts higher trained accuracy.\n\n"
            "usage: epsinas <command> [options]     (epsinas <command> --help for more)\n\n"
            "commands:\n",
            EPS_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\nexit status: 0 done, 2 bad input (one line on stderr), 130 interrupted, 1 internal error\n"
            "\nexample:\n"
            "  epsinas score --space nb201 --arch "
            "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("epsinas %s\n", EPS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "epsinas: unknown command '%s' (try 'epsinas --help')\n", argv[1]);
    return 2;
}
