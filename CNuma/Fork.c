// The locks that fork(2) keeps usable, and the per-thread slot tables of the pools.
#ifdef __linux__
#include "CNuma.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

// MARK: locks

// Guards the links of the lock list. Taken first by the prepare handler and never while a
// listed lock is held (making or ending a lock takes it).
static pthread_mutex_t list_mutex = PTHREAD_MUTEX_INITIALIZER;

// The head of the list, made before any other, so that it comes first in fork order.
CNuma_lock CNuma_slots_lock = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL };
static CNuma_lock *tail = &CNuma_slots_lock;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void kill_other_tables(void);

static void before_fork(void) {
    pthread_mutex_lock(&list_mutex);
    for (CNuma_lock *lock = &CNuma_slots_lock; lock != NULL; lock = lock->next) pthread_mutex_lock(&lock->mutex);
}

static void after_fork_parent(void) {
    for (CNuma_lock *lock = tail; lock != NULL; lock = lock->prev) pthread_mutex_unlock(&lock->mutex);
    pthread_mutex_unlock(&list_mutex);
}

static void after_fork_child(void) {
    // Only the forking thread exists here, and it holds every lock: start them all afresh.
    for (CNuma_lock *lock = &CNuma_slots_lock; lock != NULL; lock = lock->next) pthread_mutex_init(&lock->mutex, NULL);
    pthread_mutex_init(&list_mutex, NULL);
    kill_other_tables();
    // The forking thread has another id here; a claim on its table by a reclaiming thread of
    // the parent is taken over by its next slow path (the holder names the parent's process).
    CNuma_slots.tid = (int32_t)gettid();
}

static void install_handlers(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

int CNuma_lock_init(CNuma_lock *lock) {
    pthread_once(&handlers_once, install_handlers);
    int rc = pthread_mutex_init(&lock->mutex, NULL);
    if (rc != 0) return rc;
    pthread_mutex_lock(&list_mutex);
    lock->prev = tail;
    lock->next = NULL;
    tail->next = lock;
    tail = lock;
    pthread_mutex_unlock(&list_mutex);
    return 0;
}

void CNuma_lock_destroy(CNuma_lock *lock) {
    pthread_mutex_lock(&list_mutex);
    lock->prev->next = lock->next;
    if (lock->next != NULL) lock->next->prev = lock->prev; else tail = lock->prev;
    pthread_mutex_unlock(&list_mutex);
    pthread_mutex_destroy(&lock->mutex);
}

// MARK: slot tables

const uint64_t CNuma_empty_state[CNUMA_EMPTY_STATE_WORDS] __attribute__((aligned(64))) = {0};

uint16_t CNuma_heap_cache_offsets[CNUMA_HEAP_CLASS_TABLE] = {0};

__thread CNuma_slot_table CNuma_slots __attribute__((tls_model("initial-exec"))) = {
    .active = { [0 ... CNUMA_SLOT_COUNT - 1] = (void *)CNuma_empty_state },
    .home = { [0 ... CNUMA_SLOT_COUNT - 1] = (void *)CNuma_empty_state },
};

// Linked tables, and tables of threads lost in a fork; both under CNuma_slots_lock.
static CNuma_slot_table *live_head;
static CNuma_slot_table *dead_head;
static int have_dead;

static void push(CNuma_slot_table **head, CNuma_slot_table *table) {
    table->prev = NULL;
    table->next = *head;
    if (*head != NULL) (*head)->prev = table;
    *head = table;
}

static void unlink_from(CNuma_slot_table **head, CNuma_slot_table *table) {
    if (table->prev != NULL) table->prev->next = table->next; else *head = table->next;
    if (table->next != NULL) table->next->prev = table->prev;
    table->prev = table->next = NULL;
}

void CNuma_slots_acquire(void) { pthread_mutex_lock(&CNuma_slots_lock.mutex); }

void CNuma_slots_release(void) { pthread_mutex_unlock(&CNuma_slots_lock.mutex); }

void CNuma_slots_link(void) {
    if (CNuma_slots.linked) return;
    push(&live_head, &CNuma_slots);
    CNuma_slots.linked = 1;
    CNuma_slots.tid = (int32_t)gettid();
}

void CNuma_slots_unlink(void) {
    if (!CNuma_slots.linked) return;
    unlink_from(&live_head, &CNuma_slots);
    CNuma_slots.linked = 0;
}

CNuma_slot_table *CNuma_slots_next(CNuma_slot_table *table) { return table == NULL ? live_head : table->next; }

CNuma_slot_table *CNuma_slots_next_dead(CNuma_slot_table *table) { return table == NULL ? dead_head : table->next; }

void CNuma_slots_forget_dead(CNuma_slot_table *table) {
    unlink_from(&dead_head, table);
    table->linked = 0;
    if (dead_head == NULL) __atomic_store_n(&have_dead, 0, __ATOMIC_RELAXED);
}

int CNuma_slots_have_dead(void) { return __atomic_load_n(&have_dead, __ATOMIC_RELAXED); }

// In the child after a fork: every linked table but this thread's belongs to a thread that
// does not exist here. Their memory was copied with the rest; the pools write their state off.
static void kill_other_tables(void) {
    CNuma_slot_table *table = live_head;
    while (table != NULL) {
        CNuma_slot_table *next = table->next;
        if (table != &CNuma_slots) {
            unlink_from(&live_head, table);
            push(&dead_head, table);
            __atomic_store_n(&have_dead, 1, __ATOMIC_RELAXED);
        }
        table = next;
    }
}
#endif

int CNuma_slots_claim(CNuma_slot_table *table, uint64_t holder, uint64_t *found) {
    uint64_t expected = 0;
    int done = __atomic_compare_exchange_n(&table->holder, &expected, holder, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    *found = expected;
    return done;
}

void CNuma_slots_drop_claim(CNuma_slot_table *table, uint64_t expected) {
    __atomic_compare_exchange_n(&table->holder, &expected, 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void CNuma_slots_unclaim(CNuma_slot_table *table) { __atomic_store_n(&table->holder, 0, __ATOMIC_RELEASE); }
