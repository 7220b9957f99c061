/*
 * main.c - hilbertd entry point (placeholder until the server module lands).
 */
int main(void) {
    return 0;
}
