/* On the device: classify the exported test digits with the exported model and check every
 * logit against the host's integer path (tq_test_data.h). Exit status 0 when all agree.
 * insn_mark_start/stop bracket one inference for the instruction counter (shared tools). */
#include <stdint.h>

#include "semihost.h"
#include "tq_model.h"

#define TQ_TEST_DATA_ATTR __attribute__((section(".testdata")))
#include "tq_test_data.h"

__attribute__((noinline, noipa)) void insn_mark_start(void) { __asm__ volatile("nop"); }
__attribute__((noinline, noipa)) void insn_mark_stop(void) { __asm__ volatile("nop; nop"); }

static char *utoa10(unsigned v, char *end) {
    *--end = '\0';
    do *--end = (char)('0' + v % 10); while (v /= 10);
    return end;
}

static void say(const char *label, unsigned v) {
    char buf[16];
    sh_write0(label);
    sh_write0(utoa10(v, buf + sizeof buf));
}

int main(void) {
    unsigned mismatches = 0, correct = 0;
    for (int i = 0; i < TQ_TEST_N; i++) {
        int8_t logits[TQ_MODEL_OUTPUTS];
        if (i == 0) insn_mark_start();
        int c = tq_model_classify(tq_test_pixels[i], logits);
        if (i == 0) insn_mark_stop();
        for (int k = 0; k < TQ_MODEL_OUTPUTS; k++) mismatches += logits[k] != tq_test_logits[i][k];
        correct += c == tq_test_labels[i];
    }
    say("mcu: ", TQ_TEST_N);
    say(" digits, ", correct);
    say(" correct, logits differing from the host: ", mismatches);
    sh_write0("\n");
    return mismatches != 0;
}
