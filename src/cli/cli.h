/* cli.h — subcommand entry points of the epsinas binary (src/cli/main.c
 * dispatches on argv[1]). Each returns the process exit code from
 * eps_cli_exit_code: 0 ok, 2 bad input (one line on stderr saying what is
 * wrong), 130 interrupted, 1 internal. */
#ifndef EPSINAS_CLI_H
#define EPSINAS_CLI_H

int eps_cmd_score(int argc, char **argv);
int eps_cmd_sweep(int argc, char **argv);
int eps_cmd_serve(int argc, char **argv);
int eps_cmd_eval(int argc, char **argv);
int eps_cmd_select(int argc, char **argv);
int eps_cmd_search(int argc, char **argv);
int eps_cmd_search_weights(int argc, char **argv);
int eps_cmd_enumerate(int argc, char **argv);
int eps_cmd_merge(int argc, char **argv);

#endif
