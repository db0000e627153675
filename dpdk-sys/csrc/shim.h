/*
 * l4lb DPDK shim: non-inline wrappers around DPDK's static inline functions
 * and function-like macros, so that Rust can call them through bindgen.
 * Every wrapper is a one-line forward; semantics are DPDK's own.
 */
#ifndef L4LB_DPDK_SHIM_H
#define L4LB_DPDK_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* ethdev fast path */
uint16_t l4lb_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t l4lb_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf */
char *l4lb_pktmbuf_mtod(struct rte_mbuf *m);
void l4lb_pktmbuf_free(struct rte_mbuf *m);
struct rte_mbuf *l4lb_pktmbuf_alloc(struct rte_mempool *mp);
int l4lb_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
uint16_t l4lb_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t l4lb_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t l4lb_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t l4lb_pktmbuf_pkt_len(const struct rte_mbuf *m);
int l4lb_pktmbuf_is_contiguous(const struct rte_mbuf *m);

/* EAL */
int l4lb_errno(void);
unsigned int l4lb_lcore_id(void);

/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (function-like macros bindgen cannot expand). */
uint64_t l4lb_rss_hf_ip_tcp_udp(void);

#endif
