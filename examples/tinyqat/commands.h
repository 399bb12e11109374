/* The subcommands, one function each (in cmd_*.c); main.c's table lists them. */
#ifndef TQ_COMMANDS_H
#define TQ_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_ptq(int argc, char **argv);
int cmd_qat(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_view(int argc, char **argv);

#endif
