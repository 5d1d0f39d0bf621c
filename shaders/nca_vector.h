/* The vector type of the μNCA C kernels (nca_train.c, nca_loss.c): V floats, one register's
 * worth (8 with AVX2, 16 with AVX-512, 4 otherwise), as GCC/Clang vector extensions. */
#ifndef NCA_VECTOR_H
#define NCA_VECTOR_H

#if defined(__AVX512F__)
#define V 16
#elif defined(__AVX__)
#define V 8
#else
#define V 4
#endif
typedef float vec __attribute__((vector_size(4 * V), aligned(4)));  /* V floats, any float address */
typedef int ivec __attribute__((vector_size(4 * V)));                /* lane masks: -1 true, 0 false */
#define AT(pointer) (*(const vec *)(pointer))                        /* V floats from any float address */

#endif
