# bash completion for rvsadm (ipvsadm for rvsd). Kept next to the parser (src/args.rs); a test
# checks that every option of its table is offered here.
_rvsadm() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -s|--scheduler)
            COMPREPLY=($(compgen -W "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos pewma" -- "$cur")); return ;;
        --start-daemon|--stop-daemon)
            COMPREPLY=($(compgen -W "master backup" -- "$cur")); return ;;
        --tun-type)
            COMPREPLY=($(compgen -W "ipip gue gre" -- "$cur")); return ;;
        --proxy-protocol)
            COMPREPLY=($(compgen -W "v1 v2" -- "$cur")); return ;;
        --pe)
            COMPREPLY=($(compgen -W "sip" -- "$cur")); return ;;
        -b|--sched-flags)
            COMPREPLY=($(compgen -W "sh-fallback sh-port mh-fallback mh-port flag-1 flag-2 flag-3" -- "$cur")); return ;;
        --mcast-interface)
            COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
        --socket)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -t|--tcp-service|-u|--udp-service|--sctp-service|-f|--fwmark-service|-r|--real-server|\
        -w|--weight|-x|--u-threshold|-y|--l-threshold|-p|--persistent|-M|--netmask|-z|--laddr|\
        --syncid|--sync-maxlen|--mcast-group|--mcast-port|--mcast-ttl|--tun-port)
            return ;;
    esac
    local opts="-A --add-service -E --edit-service -D --delete-service -C --clear
        -L --list -l -Z --zero -a --add-server -e --edit-server -d --delete-server --set
        -h --help -v --version -R --restore -S --save --start-daemon --stop-daemon
        -t --tcp-service -u --udp-service --sctp-service -f --fwmark-service -s --scheduler
        -p --persistent -M --netmask -r --real-server -m --masquerading -i --ipip
        -g --gatewaying -w --weight -x --u-threshold -y --l-threshold -n --numeric
        -c --connection --mcast-interface --syncid --timeout --daemon --stats --rate
        --thresholds --persistent-conn --nosort --sort -X --exact -6 --ipv6 -o --ops --pe
        -b --sched-flags --mcast-group --mcast-port --mcast-ttl --sync-maxlen --tun-info
        --tun-type --tun-port --tun-nocsum --tun-csum --tun-remcsum --fullnat --proxy-protocol
        --add-laddr --del-laddr --get-laddr -z --laddr --vrrp --json --sysctl --socket"
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _rvsadm rvsadm
