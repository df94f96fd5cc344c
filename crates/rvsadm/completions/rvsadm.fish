# fish completion for rvsadm (ipvsadm for rvsd). Kept next to the parser (src/args.rs); a
# test checks that every option of its table is offered here.
complete -c rvsadm -f
complete -c rvsadm -l add-service -s A
complete -c rvsadm -l edit-service -s E
complete -c rvsadm -l delete-service -s D
complete -c rvsadm -l clear -s C
complete -c rvsadm -l list -s L
complete -c rvsadm -l zero -s Z
complete -c rvsadm -l add-server -s a
complete -c rvsadm -l edit-server -s e
complete -c rvsadm -l delete-server -s d
complete -c rvsadm -l set
complete -c rvsadm -l help -s h
complete -c rvsadm -l version -s v
complete -c rvsadm -l restore -s R
complete -c rvsadm -l save -s S
complete -c rvsadm -l start-daemon -xa 'master backup'
complete -c rvsadm -l stop-daemon -xa 'master backup'
complete -c rvsadm -l tcp-service -s t -r
complete -c rvsadm -l udp-service -s u -r
complete -c rvsadm -l sctp-service -r
complete -c rvsadm -l fwmark-service -s f -r
complete -c rvsadm -l scheduler -s s -xa 'rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos pewma'
complete -c rvsadm -l persistent -s p
complete -c rvsadm -l netmask -s M -r
complete -c rvsadm -l real-server -s r -r
complete -c rvsadm -l masquerading -s m
complete -c rvsadm -l ipip -s i
complete -c rvsadm -l gatewaying -s g
complete -c rvsadm -l weight -s w -r
complete -c rvsadm -l u-threshold -s x -r
complete -c rvsadm -l l-threshold -s y -r
complete -c rvsadm -l numeric -s n
complete -c rvsadm -l connection -s c
complete -c rvsadm -l mcast-interface -r
complete -c rvsadm -l syncid -r
complete -c rvsadm -l timeout
complete -c rvsadm -l daemon
complete -c rvsadm -l stats
complete -c rvsadm -l rate
complete -c rvsadm -l thresholds
complete -c rvsadm -l persistent-conn
complete -c rvsadm -l nosort
complete -c rvsadm -l sort
complete -c rvsadm -l exact -s X
complete -c rvsadm -l ipv6 -s 6
complete -c rvsadm -l ops -s o
complete -c rvsadm -l pe -xa sip
complete -c rvsadm -l sched-flags -s b -xa 'sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3'
complete -c rvsadm -l mcast-group -r
complete -c rvsadm -l mcast-port -r
complete -c rvsadm -l mcast-ttl -r
complete -c rvsadm -l sync-maxlen -r
complete -c rvsadm -l tun-info
complete -c rvsadm -l tun-type -xa 'ipip gue gre'
complete -c rvsadm -l tun-port -r
complete -c rvsadm -l tun-nocsum
complete -c rvsadm -l tun-csum
complete -c rvsadm -l tun-remcsum
complete -c rvsadm -l fullnat
complete -c rvsadm -l proxy-protocol -xa 'v1 v2'
complete -c rvsadm -l add-laddr
complete -c rvsadm -l del-laddr
complete -c rvsadm -l get-laddr
complete -c rvsadm -l laddr -s z -r
complete -c rvsadm -l vrrp
complete -c rvsadm -l json
complete -c rvsadm -l sysctl
complete -c rvsadm -l socket -r -F
complete -c rvsadm -s l -d 'list the table'
